/**
 * Local mistakes are caught locally (issue 12 item 8): bad targets and `-L`/`-D` flags exit 2
 * before any handshake, a closed stdout or stderr ends the CLI quietly, a misspelt config key is
 * reported as the unknown key it is, and the TLS/HTTP mix-ups give one clear line each. Through
 * the real bin/twoway against a real server on loopback.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey } from '../../src/crypto/keys.js';
import { TWOWAY_BIN, runTwoway, stopAll, twoway } from '../helpers/processes.js';
import { TestTunnel } from '../helpers/tunnel.js';

let tunnel: TestTunnel;
let config: string;

/** Handshakes the server has seen (accepted or refused). */
function handshakes(): number {
  return tunnel.server!.logLines().filter((l) => l.event === 'auth.accepted' || l.event === 'auth.refused').length;
}

beforeAll(async () => {
  tunnel = new TestTunnel({ peers: [{ name: 'alice', allow: ['127.0.0.1:1-65535'] }] });
  await tunnel.startServer();
  config = tunnel.clientConfig('alice');
}, 30_000);

afterAll(async () => {
  await stopAll();
  await tunnel.stop();
});

describe('usage mistakes exit 2 before any handshake', () => {
  it.each([
    ['no-port-here', /connect: target "no-port-here": expected HOST:PORT/],
    ['db.corp.example:0', /port must be a number from 1 to 65535/],
    ['db.corp.example:99999', /port must be a number from 1 to 65535/],
    ['db.corp.example:2ssh', /device target: expected DEVICE:SERVICE/],
    ['build9:ssh', /connect: target "build9:ssh": no public key pinned for device build9/],
    ['ssh.build9.twoway:22', /no public key pinned for device build9/],
    ['fe80::1:22', /IPv6 addresses go in brackets/],
    ['[::1]', /expected \[IPv6\]:port/],
    ['bad host:22', /not a valid host name or address/],
    ['', /expected HOST:PORT/],
  ])('twoway connect %j', async (target, message) => {
    const r = await runTwoway(['connect', '-c', config, target]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.each([
    [['-L', 'nonsense'], /-L "nonsense": expected LISTEN=TARGET/],
    [['-L', '127.0.0.1:2222='], /expected LISTEN=TARGET/],
    [['-L', '=db.corp.example:22'], /expected LISTEN=TARGET/],
    [['-L', '127.0.0.1:99999=db.corp.example:22'], /LISTEN: expected "host:port"/],
    [['-L', 'not a host:2222=db.corp.example:22'], /LISTEN: expected "host:port"/],
    [['-L', '127.0.0.1:2222=no-port'], /TARGET "no-port": expected HOST:PORT/],
    [['-L', '127.0.0.1:2222=build9:ssh'], /-L TARGET "build9:ssh": no public key pinned for device build9/],
    [['-D', 'nonsense'], /-D "nonsense": expected "host:port"/],
    [['-D', '127.0.0.1:1080x'], /-D "127.0.0.1:1080x"/],
  ])('twoway client %j', async (flags, message) => {
    const r = await runTwoway(['client', '-c', config, ...flags]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('none of them reached the server', () => {
    expect(handshakes()).toBe(0);
  });
});

describe('a closed stdout or stderr ends the CLI quietly', () => {
  /** Runs twoway with the reading end of its stdout (or stderr) closed before it writes. */
  function withClosedPipe(args: string[], which: 'stdout' | 'stderr'): Promise<{ code: number | null; signal: NodeJS.Signals | null; other: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [TWOWAY_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      child[which].destroy();
      let other = '';
      child[which === 'stdout' ? 'stderr' : 'stdout'].on('data', (c: Buffer) => (other += c.toString()));
      child.once('exit', (code, signal) => resolve({ code, signal, other }));
    });
  }

  it.each([[['help', 'status']], [['keygen']], [['--help']], [['peers', '--help']]])('twoway %j with stdout closed', async (args) => {
    const r = await withClosedPipe(args, 'stdout');
    expect(r.signal).toBeNull();
    expect(r.other).toBe(''); // no stack trace, no EPIPE
    expect(r.code).toBe(1); // the output was cut: not a success
  });

  it('an error message with stderr closed', async () => {
    const r = await withClosedPipe(['connect', '-c', config, 'no-port-here'], 'stderr');
    expect(r.signal).toBeNull();
    expect(r.other).toBe('');
    expect(r.code).toBe(2);
  });

  it('twoway help status | true: the reader is gone before twoway writes; nothing on stderr', () => {
    const err = tunnel.path('pipe-stderr.txt');
    execFileSync('sh', ['-c', `"${process.execPath}" "${TWOWAY_BIN}" help status 2>"${err}" | true`]);
    expect(fs.readFileSync(err, 'utf8')).toBe('');
    const out = execFileSync('sh', ['-c', `"${process.execPath}" "${TWOWAY_BIN}" help status 2>"${err}" | head -1`], { encoding: 'utf8' });
    expect(out).toBe('Usage: twoway status [options]\n');
    expect(fs.readFileSync(err, 'utf8')).toBe('');
  });
});

describe('a misspelt key is reported as the unknown key it is', () => {
  it.each([
    ['sever_url', 'server_url', /\[client\]\.sever_url: unknown key \(did you mean server_url\?\)/],
    ['private_key_fil', 'private_key_file', /\[client\]\.private_key_fil: unknown key \(did you mean private_key_file\?\)/],
    ['reconect_min_ms', 'reconnect_min_ms', /\[client\]\.reconect_min_ms: unknown key \(did you mean reconnect_min_ms\?\)/],
  ])('%s', async (typo, key, message) => {
    const file = tunnel.path(`typo-${typo}.toml`);
    fs.writeFileSync(file, fs.readFileSync(config, 'utf8').replace(new RegExp(`^${key} `, 'm'), `${typo} `));
    for (const args of [
      ['check-config', file],
      ['client', '-c', file],
    ]) {
      const r = await runTwoway(args);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/required key is missing/);
    }
  });

  it('a server config too', async () => {
    const file = tunnel.path('typo-server.toml');
    fs.writeFileSync(file, fs.readFileSync(tunnel.path('server.toml'), 'utf8').replace('peers_file', 'peer_file'));
    const r = await runTwoway(['check-config', file]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/\[server\]\.peer_file: unknown key \(did you mean peers_file\?\)/);
  });
});

describe('TLS and HTTP mix-ups give one clear line', () => {
  let tlsTunnel: TestTunnel;
  let web: http.Server;

  beforeAll(async () => {
    tlsTunnel = new TestTunnel({ peers: [{ name: 'alice', allow: [] }] });
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        tlsTunnel.path('tls.key'),
        '-out',
        tlsTunnel.path('tls.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    fs.chmodSync(tlsTunnel.path('tls.key'), 0o600);
    tlsTunnel.options = { ...tlsTunnel.options, serverExtra: 'tls_cert_file = "tls.pem"\ntls_key_file = "tls.key"\n' };
    await tlsTunnel.startServer();
    web = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('an ordinary web server\n'));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  }, 30_000);

  afterAll(async () => {
    web.close();
    await tlsTunnel.stop();
  });

  /** `twoway connect` with server_url replaced; its stderr lines that are not log lines. */
  async function connectWith(url: string, extra = ''): Promise<{ code: number | null; message: string }> {
    const file = tunnel.path(`url-${encodeURIComponent(url)}.toml`);
    const text = fs
      .readFileSync(config, 'utf8')
      .replace(/^server_url = .*$/m, `server_url = "${url}"`)
      .replace(/^control_socket = .*$/m, '');
    fs.writeFileSync(file, `${text.replace('[client]\n', `[client]\n${extra}`)}`);
    const r = await runTwoway(['connect', '-c', file, '127.0.0.1:22']);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('twoway:'));
    expect(lines, r.stderr).toHaveLength(1);
    return { code: r.code, message: lines[0]! };
  }

  it('wss:// to a plain ws:// port', async () => {
    const r = await connectWith(`wss://127.0.0.1:${tunnel.serverPort}/twoway`);
    expect(r.message).toBe(`twoway: the server at wss://127.0.0.1:${tunnel.serverPort}/twoway does not speak TLS: use ws:// or check the port`);
    expect(r.code).toBe(1);
  });

  it('ws:// to a TLS port', async () => {
    const r = await connectWith(`ws://127.0.0.1:${tlsTunnel.serverPort}/twoway`);
    expect(r.message).toMatch(
      new RegExp(
        `^twoway: the server at ws://127\\.0\\.0\\.1:${tlsTunnel.serverPort}/twoway (closed the connection without an HTTP answer: if it serves TLS, use wss://|does not speak HTTP \\(a TLS port\\? use wss://\\))`,
      ),
    );
    expect(r.code).toBe(1);
  });

  it('wss:// to a certificate the client does not trust', async () => {
    const r = await connectWith(`wss://127.0.0.1:${tlsTunnel.serverPort}/twoway`);
    expect(r.message).toMatch(/has a TLS certificate this client does not trust \(self-signed certificate\): set \[client\]\.ca_file/);
  });

  it('an HTTP server that is not twoway', async () => {
    const port = (web.address() as { port: number }).port;
    const r = await connectWith(`ws://127.0.0.1:${port}/twoway`);
    expect(r.message).toBe(
      `twoway: the server at ws://127.0.0.1:${port}/twoway answered HTTP 200 instead of a WebSocket upgrade: not a twoway server, or the wrong port or path`,
    );
  });

  it('the wrong path on a twoway server', async () => {
    const r = await connectWith(`ws://127.0.0.1:${tunnel.serverPort}/wrong`);
    expect(r.message).toBe(
      `twoway: no twoway endpoint at ws://127.0.0.1:${tunnel.serverPort}/wrong (HTTP 404): check the path (the server's [server].path, default /twoway)`,
    );
  });

  it('the right URL still works, with TLS', async () => {
    const file = tunnel.path('tls-ok.toml');
    const text = fs
      .readFileSync(config, 'utf8')
      .replace(/^server_url = .*$/m, `server_url = "wss://127.0.0.1:${tlsTunnel.serverPort}/twoway"`)
      .replace(/^server_public_key = .*$/m, `server_public_key = "${encodeKey(tlsTunnel.serverKey.publicKey)}"\nca_file = "${tlsTunnel.path('tls.pem')}"`)
      .replace(/^private_key_file = .*$/m, `private_key_file = "${tlsTunnel.path('alice.key')}"`);
    fs.writeFileSync(file, text);
    const client = twoway(['client', '-c', file]);
    await client.waitForEvent('session.open');
    await client.stop();
  });
});
