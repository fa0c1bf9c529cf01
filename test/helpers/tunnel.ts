/**
 * A real tunnel for integration tests: throwaway keys and configs in a private temp dir, a server
 * and a client daemon started from bin/twoway, everything on loopback.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { encodeKey, generateKeyPair, type KeyPair } from '../../src/crypto/keys.js';
import { twoway, type Proc } from './processes.js';
import { tempDir } from './temp-dir.js';

export interface PeerSpec {
  readonly name: string;
  readonly key?: KeyPair;
  readonly allow: readonly string[];
  readonly psk?: boolean;
  readonly kind?: 'user' | 'device';
  /** Device services a user may reach, `DEVICE:SERVICE` (peers.toml `devices`). */
  readonly devices?: readonly string[];
  /** Reverse listeners of a device, `SERVICE=HOST:PORT` (peers.toml `reverse`). */
  readonly reverse?: readonly string[];
  /** More lines of the peer's table, as TOML (`verify = "totp"`). */
  readonly extra?: string;
}

export interface TunnelOptions {
  readonly peers?: readonly PeerSpec[];
  /** Extra lines for the server's [limits] table. */
  readonly serverLimits?: string;
  readonly clientLimits?: string;
  /** Extra lines for the server's [server] table. */
  readonly serverExtra?: string;
  /** Extra lines for the client's [client] table. */
  readonly clientExtra?: string;
  /** Client [[forward]] and [[socks]] tables, as TOML text. */
  readonly clientListeners?: string;
  /** The daemons' global `--log-level` (default: info). */
  readonly logLevel?: string;
}

export class TestTunnel {
  readonly dir: string;
  readonly serverKey: KeyPair;
  readonly peers: Array<PeerSpec & { key: KeyPair }>;
  serverPort = 0;
  server: Proc | undefined;
  readonly clients: Proc[] = [];

  constructor(public options: TunnelOptions = {}) {
    this.dir = tempDir('test');
    this.serverKey = generateKeyPair();
    this.peers = (options.peers ?? [{ name: 'alice', allow: [] }]).map((p) => ({ ...p, key: p.key ?? generateKeyPair() }));
    this.writeSecret('server.key', encodeKey(this.serverKey.privateKey));
    for (const p of this.peers) {
      this.writeSecret(`${p.name}.key`, encodeKey(p.key.privateKey));
      if (p.psk) this.writeSecret(`${p.name}.psk`, encodeKey(generateKeyPair().privateKey));
    }
    this.writePeers(this.peers);
  }

  path(name: string): string {
    return path.join(this.dir, name);
  }

  writeSecret(name: string, text: string): void {
    fs.writeFileSync(this.path(name), `${text}\n`, { mode: 0o600 });
  }

  /** Rewrites peers.toml (the server reloads it on SIGHUP or `peers add|remove`). */
  writePeers(peers: ReadonlyArray<PeerSpec & { key: KeyPair }>): void {
    const text = peers
      .map(
        (p) =>
          `[[peer]]\nname = "${p.name}"\npublic_key = "${encodeKey(p.key.publicKey)}"\n` +
          `${p.psk ? `psk_file = "${p.name}.psk"\n` : ''}allow = ${JSON.stringify(p.allow)}\nkind = "${p.kind ?? 'user'}"\n` +
          `${p.devices ? `devices = ${JSON.stringify(p.devices)}\n` : ''}${p.reverse ? `reverse = ${JSON.stringify(p.reverse)}\n` : ''}${p.extra ?? ''}`,
      )
      .join('\n');
    fs.writeFileSync(this.path('peers.toml'), text);
  }

  /** Starts the server on an ephemeral port and waits until it listens. */
  async startServer(port = 0): Promise<Proc> {
    fs.writeFileSync(
      this.path('server.toml'),
      `[server]\nlisten = "127.0.0.1:${port}"\nprivate_key_file = "server.key"\npeers_file = "peers.toml"\n` +
        `control_socket = "server.sock"\nshutdown_grace_ms = 3000\n${this.options.serverExtra ?? ''}\n` +
        `[limits]\n${this.options.serverLimits ?? ''}\n`,
    );
    const server = twoway([...this.#logArgs(), 'server', '--config', this.path('server.toml')]);
    this.server = server;
    const listening = await server.waitForEvent('listen');
    this.serverPort = Number(listening.port);
    await server.waitForEvent('daemon.ready');
    return server;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.serverPort}/twoway`;
  }

  /** Writes a client config for `peer` and returns its path. */
  clientConfig(peer: string, listeners = this.options.clientListeners ?? '', extra = this.options.clientExtra ?? ''): string {
    const file = this.path(`client-${peer}.toml`);
    const p = this.peers.find((x) => x.name === peer)!;
    fs.writeFileSync(
      file,
      `[client]\nserver_url = "${this.url}"\nserver_public_key = "${encodeKey(this.serverKey.publicKey)}"\n` +
        `private_key_file = "${peer}.key"\n${p.psk ? `psk_file = "${peer}.psk"\n` : ''}control_socket = "client-${peer}.sock"\n` +
        `reconnect_min_ms = 200\nreconnect_max_ms = 1000\n${extra}\n${listeners}\n[limits]\n${this.options.clientLimits ?? ''}\n`,
    );
    return file;
  }

  /** Starts a client daemon for `peer` and waits for its session (unless `waitSession` is false). */
  async startClient(peer = this.peers[0]!.name, listeners?: string, waitSession = true, extraArgs: string[] = []): Promise<Proc> {
    const client = twoway([...this.#logArgs(), 'client', '--config', this.clientConfig(peer, listeners), ...extraArgs]);
    this.clients.push(client);
    await client.waitForEvent('daemon.ready');
    if (waitSession) await client.waitForEvent('session.open');
    return client;
  }

  #logArgs(): string[] {
    return this.options.logLevel ? ['--log-level', this.options.logLevel] : [];
  }

  /** Ports the client's listeners bound, in order, from its log. */
  static listenerPorts(client: Proc): number[] {
    return client
      .logLines()
      .filter((l) => l.event === 'listen')
      .map((l) => Number(l.port));
  }

  async stop(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.stop()));
    await this.server?.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A TCP echo target on loopback. */
export async function startEchoServer(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** The 5-byte header a connection to startResettingEchoTarget begins with: reset after `bytes` echoed, or never. */
export function resetAfterHeader(bytes: number | undefined): Buffer {
  const header = Buffer.alloc(5);
  header[0] = bytes === undefined ? 0x45 /* E */ : 0x52; /* R */
  header.writeUInt32BE(bytes ?? 0, 1);
  return header;
}

/**
 * An echo target for reset tests. Each connection begins with a resetAfterHeader (not echoed):
 * 'R' + u32 echoes that many bytes and then resets the connection, even with data still coming
 * in (the RST then lands behind data the other side has not read); 'E' echoes everything and
 * ends after the client's end.
 */
export async function startResettingEchoTarget(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    let header: Buffer | undefined = Buffer.alloc(0);
    let resetAfter = Infinity;
    let echoed = 0;
    socket.on('data', (chunk: Buffer) => {
      if (header !== undefined) {
        header = Buffer.concat([header, chunk]);
        if (header.length < 5) return;
        if (header[0] === 0x52) resetAfter = header.readUInt32BE(1);
        chunk = header.subarray(5);
        header = undefined;
      }
      const n = Math.min(chunk.length, resetAfter - echoed);
      if (n > 0) socket.write(chunk.subarray(0, n));
      echoed += n;
      if (echoed >= resetAfter && !socket.destroyed) socket.resetAndDestroy();
    });
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/**
 * A target that hashes everything it receives and, once the client has ended its side, answers
 * with `response` and ends: a half-close both ways. The sha256 of each connection's input is
 * pushed to `digests` when its end arrives.
 */
export async function startAnsweringSink(response: Buffer): Promise<{ server: net.Server; port: number; digests: string[] }> {
  const digests: string[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    const hash = createHash('sha256');
    socket.on('data', (c: Buffer) => hash.update(c));
    socket.on('end', () => {
      digests.push(hash.digest('hex'));
      socket.end(response);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port, digests };
}
