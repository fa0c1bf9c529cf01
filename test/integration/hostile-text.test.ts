/**
 * Text a peer chooses never reaches a terminal or a log raw (issue 13 item 6). A hand-made server,
 * built from the project's own session and mux modules, refuses opens with an OPEN_FAIL message
 * that rewrites a terminal's title and erases its line, and ends sessions with a GOAWAY and a close
 * record carrying the same; the real `twoway connect` and `twoway client` must print and log it
 * escaped.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeKey, generateKeyPair } from '../../src/crypto/keys.js';
import { MuxSession } from '../../src/mux/session.js';
import { listenSecure, type SecureServer } from '../../src/session/listen-secure.js';
import { runTwoway, stopAll, twoway } from '../helpers/processes.js';
import { waitUntil } from '../helpers/wait.js';
import { tempDir } from '../helpers/temp-dir.js';

/** OSC 0 (set the title), BEL, CSI 2 K (erase the line), a forged line, a bidi override, C1 CSI. */
const HOSTILE = '\u001b]0;pwned\u0007\u001b[2K\nforged line \u202eevil\u202c \u009b31m \u2066x\u2069 \u007f';
/** Any control or format character but the newline ending a line. */
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;

describe('peer-chosen text is escaped', () => {
  let dir: string;
  let server: SecureServer;
  let config: string;

  beforeAll(async () => {
    dir = tempDir('hostile');
    const serverKeys = generateKeyPair();
    const alice = generateKeyPair();
    fs.writeFileSync(path.join(dir, 'alice.key'), `${encodeKey(alice.privateKey)}\n`, { mode: 0o600 });
    server = await listenSecure({
      host: '127.0.0.1',
      port: 0,
      staticKeyPair: serverKeys,
      lookupPeer: (k) => (Buffer.from(k).equals(Buffer.from(alice.publicKey)) ? { name: 'alice', publicKey: alice.publicKey } : undefined),
      logger: pino({ level: 'silent' }),
      onSession: (session) => {
        const mux = new MuxSession(session, {
          role: 'server',
          onStreamRequest: (request) => {
            if (!request.target.startsWith('goaway.')) {
              request.reject('not-permitted', HOSTILE);
              return;
            }
            mux.close('normal', HOSTILE);
            session.close({ code: 'normal', message: HOSTILE });
          },
        });
      },
    });
    config = path.join(dir, 'client.toml');
    fs.writeFileSync(
      config,
      `[client]\nserver_url = "ws://127.0.0.1:${server.address().port}/twoway"\nserver_public_key = "${encodeKey(serverKeys.publicKey)}"\n` +
        `private_key_file = "alice.key"\nreconnect_min_ms = 200\nreconnect_max_ms = 1000\n`,
    );
  });

  afterAll(async () => {
    await stopAll();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('twoway connect prints an OPEN_FAIL message escaped, on one line', async () => {
    const r = await runTwoway(['connect', '-c', config, 'db.corp.example:22']);
    expect(r.code).toBe(5);
    expect(r.stderr).not.toMatch(RAW);
    // One `twoway:` line (the forged newline is escaped), beside the connect command's own log line.
    expect(r.stderr.split('\n').filter((l) => l.startsWith('twoway:'))).toHaveLength(1);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('forged'))).toHaveLength(0);
    expect(r.stderr).toContain('\\x1b]0;pwned\\x07\\x1b[2K\\x0aforged line \\u202eevil');
  });

  it('twoway connect prints a GOAWAY and close-record text escaped', async () => {
    const r = await runTwoway(['connect', '-c', config, 'goaway.example:22']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(RAW);
    expect(r.stderr).toContain('\\x1b]0;pwned');
  });

  it('the client daemon logs them escaped', async () => {
    fs.appendFileSync(
      config,
      '[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "db.corp.example:22"\n[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "goaway.example:22"\n',
    );
    const client = twoway(['--log-level', 'debug', 'client', '-c', config]);
    await client.waitForEvent('session.open');
    const [refusedPort, goawayPort] = client
      .logLines()
      .filter((l) => l.event === 'listen')
      .map((l) => Number(l.port));
    for (const port of [refusedPort, goawayPort]) {
      const socket = net.connect(port!, '127.0.0.1');
      socket.on('error', () => {});
      await new Promise((resolve) => socket.once('close', resolve));
    }
    await client.waitForEvent('stream.refused');
    await client.waitForEvent('session.closed');
    await waitUntil(() => client.logLines().some((l) => l.event === 'mux.closed'), 'mux.closed logged');
    await client.stop();
    expect(client.stdout).toContain('\\\\x1b]0;pwned');
    expect(client.stdout).not.toMatch(RAW);
    expect(client.stderr).not.toMatch(RAW);
    const closed = client.logLines().find((l) => l.event === 'session.closed');
    expect(String(closed?.detail)).toContain('\\x1b]0;pwned');
  });
});
