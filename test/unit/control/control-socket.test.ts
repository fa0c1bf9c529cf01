/**
 * The control socket's pieces over real unix sockets in a private temp folder: the server's one
 * request line and one answer, the JSON-line reader, the request client, the trust check, and
 * `twoway connect` through a daemon (connect-serve.ts and connect-request.ts back to back).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../../../src/control/control-client.js';
import { startControlServer, type ControlHandler, type ControlServer } from '../../../src/control/control-server.js';
import { controlSocketTrust } from '../../../src/control/control-trust.js';
import { requestConnect } from '../../../src/control/connect-request.js';
import { serveConnect } from '../../../src/control/connect-serve.js';
import { LineTooLongError, readLine } from '../../../src/control/json-line.js';
import { MuxStreamError } from '../../../src/mux/reason.js';
import { drain, sha256 } from '../../helpers/streams.js';

const silent = pino({ level: 'silent' });
const uid = process.getuid?.() ?? 0;
let dir: string;
const servers: ControlServer[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twoway-control-'));
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function serve(handler: ControlHandler, name = 'c.sock'): Promise<string> {
  const socketPath = path.join(dir, name);
  servers.push(await startControlServer(socketPath, handler, silent));
  return socketPath;
}

/** Sends raw bytes, resolves with everything the server sent until it closed. */
function raw(socketPath: string, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    let got = '';
    s.on('data', (c) => (got += c.toString()));
    s.on('error', () => {});
    s.on('close', () => resolve(got));
    s.write(bytes);
  });
}

describe('readLine', () => {
  it('reads a line split over chunks and leaves what follows it in the socket', async () => {
    const server = net.createServer();
    const socketPath = path.join(dir, 'l.sock');
    await new Promise<void>((r) => server.listen(socketPath, r));
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect(socketPath);
    const peer = await accepted;
    const line = readLine(peer);
    client.write('{"cmd":');
    client.write('"x"}\nREST');
    expect(await line).toBe('{"cmd":"x"}');
    const rest = new Promise<string>((r) => peer.once('data', (c) => r(c.toString())));
    peer.resume();
    expect(await rest).toBe('REST');
    client.destroy();
    server.close();
  });

  it('resolves undefined when the socket ends first, and rejects a line past the limit', async () => {
    const server = net.createServer();
    const socketPath = path.join(dir, 'l.sock');
    await new Promise<void>((r) => server.listen(socketPath, r));
    const first = new Promise<net.Socket>((r) => server.once('connection', r));
    const a = net.connect(socketPath);
    const pa = await first;
    const none = readLine(pa);
    a.end('no newline');
    expect(await none).toBeUndefined();
    const second = new Promise<net.Socket>((r) => server.once('connection', r));
    const b = net.connect(socketPath);
    const pb = await second;
    const long = readLine(pb, 16);
    b.write('x'.repeat(17));
    await expect(long).rejects.toBeInstanceOf(LineTooLongError);
    b.destroy();
    server.close();
  });
});

describe('control server and client', () => {
  it('answers one request line with one JSON line; refuses a malformed one', async () => {
    const socketPath = await serve(async (request) => ({ ok: true, echo: request.cmd }));
    expect(await controlRequest(socketPath, { cmd: 'status' })).toEqual({ ok: true, echo: 'status' });
    expect(JSON.parse(await raw(socketPath, 'not json\n'))).toEqual({ ok: false, error: 'malformed request' });
    expect(JSON.parse(await raw(socketPath, '{"nocmd":1}\n'))).toEqual({ ok: false, error: 'malformed request' });
  });

  it('a handler that throws answers ok:false with its message', async () => {
    const socketPath = await serve(async () => {
      throw new Error('boom');
    });
    expect(await controlRequest(socketPath, { cmd: 'x' })).toEqual({ ok: false, error: 'boom' });
  });

  it('cuts a request line longer than 64 KiB without answering', async () => {
    let called = false;
    const socketPath = await serve(async () => {
      called = true;
      return { ok: true };
    });
    // Cut on arrival, well before the 5 s request timeout would close it (the test's own bound).
    expect(await raw(socketPath, Buffer.alloc(70 * 1024, 0x41))).toBe('');
    expect(called).toBe(false);
  }, 3_000);

  it('binds mode 0600, replaces a stale socket, refuses a path in use or not a socket', async () => {
    const socketPath = await serve(async () => ({ ok: true }));
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o600);
    await expect(startControlServer(socketPath, async () => ({ ok: true }), silent)).rejects.toThrow(/in use by a running daemon/);
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, '');
    await expect(startControlServer(file, async () => ({ ok: true }), silent)).rejects.toThrow(/not a socket/);
    // A socket left by a crashed run: nothing listens on it.
    const stale = path.join(dir, 'stale.sock');
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(stale, r));
    // Closing a unix server removes its file: keep a hard link to stand for the leftover socket.
    fs.linkSync(stale, `${stale}.left`);
    await new Promise<void>((r) => dead.close(() => r()));
    fs.renameSync(`${stale}.left`, stale);
    servers.push(await startControlServer(stale, async () => ({ ok: true, fresh: true }), silent));
    expect(await controlRequest(stale, { cmd: 'status' })).toEqual({ ok: true, fresh: true });
  });

  it('the client says plainly when no daemon is there', async () => {
    await expect(controlRequest(path.join(dir, 'none.sock'), { cmd: 'status' })).rejects.toThrow(/no such socket \(is the daemon running\?\)/);
    const socketPath = path.join(dir, 'bad.sock');
    const bad = net.createServer((s) => s.end('not json'));
    await new Promise<void>((r) => bad.listen(socketPath, r));
    await expect(controlRequest(socketPath, { cmd: 'status' })).rejects.toThrow(/malformed reply/);
    bad.close();
  });
});

describe('controlSocketTrust', () => {
  it('absent, not a socket, a symbolic link, a folder others may write, and a private folder', async () => {
    expect(controlSocketTrust(path.join(dir, 'none'), uid)).toEqual({ kind: 'absent' });
    fs.writeFileSync(path.join(dir, 'file'), '');
    expect(controlSocketTrust(path.join(dir, 'file'), uid)).toEqual({ kind: 'not-a-socket' });
    fs.chmodSync(dir, 0o700);
    const socketPath = await serve(async () => ({ ok: true }));
    expect(controlSocketTrust(socketPath, uid)).toEqual({ kind: 'trusted' });
    fs.symlinkSync(socketPath, path.join(dir, 'link.sock'));
    expect(controlSocketTrust(path.join(dir, 'link.sock'), uid)).toMatchObject({ kind: 'untrusted', why: 'is a symbolic link' });
    fs.chmodSync(dir, 0o777);
    const open = controlSocketTrust(socketPath, uid);
    expect(open.kind).toBe('untrusted');
    expect(open.kind === 'untrusted' && open.why).toContain('a folder others may write (mode 0777)');
    fs.chmodSync(dir, 0o700);
  });
});

describe('twoway connect through the control socket (connect-serve + connect-request)', () => {
  /** A daemon whose streams echo (a PassThrough) once 'open', or are refused like the mux refuses. */
  function echoOpener(target: string): PassThrough {
    const stream = new PassThrough();
    setImmediate(() => {
      if (target === 'refused:1') stream.destroy(new MuxStreamError('ERR_MUX_STREAM_REFUSED', 'refused:1: not permitted for this peer', 'not-permitted'));
      else stream.emit('open');
    });
    return stream;
  }

  async function connectServer(): Promise<string> {
    return serve(async (request, socket) => {
      if (request.cmd !== 'connect' || typeof request.target !== 'string')
        return { ok: false, error: `unknown control command ${JSON.stringify(request.cmd)}` };
      serveConnect(echoOpener, request.target, socket);
      return 'taken';
    });
  }

  it('an open stream carries bytes both ways and ends cleanly', async () => {
    fs.chmodSync(dir, 0o700);
    const socketPath = await connectServer();
    const answer = await requestConnect(socketPath, 'echo:1', uid);
    expect(answer.kind).toBe('open');
    if (answer.kind !== 'open') return;
    const stream = answer.stream();
    const back = drain(stream);
    const text = Buffer.from('hello through the daemon '.repeat(5000));
    stream.end(text);
    expect(await back).toEqual({ hash: sha256(text), length: text.length });
  });

  it('a refusal arrives as the stream refusal with its reason; other daemons and no daemon are told apart', async () => {
    fs.chmodSync(dir, 0o700);
    const socketPath = await connectServer();
    const refused = await requestConnect(socketPath, 'refused:1', uid).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(MuxStreamError);
    expect(refused).toMatchObject({ code: 'ERR_MUX_STREAM_REFUSED', reason: 'not-permitted' });
    const server = await serve(async (request) => ({ ok: false, error: `unknown control command ${JSON.stringify(request.cmd)}` }), 's.sock');
    expect(await requestConnect(server, 'x:1', uid)).toMatchObject({ kind: 'not-a-client-daemon' });
    expect(await requestConnect(path.join(dir, 'none.sock'), 'x:1', uid)).toEqual({ kind: 'no-daemon' });
    const mute = path.join(dir, 'mute.sock');
    const m = net.createServer((s) => s.end());
    await new Promise<void>((r) => m.listen(mute, r));
    expect(await requestConnect(mute, 'x:1', uid)).toEqual({ kind: 'bad-answer', why: 'closed' });
    m.close();
    fs.chmodSync(dir, 0o777);
    expect(await requestConnect(socketPath, 'x:1', uid)).toMatchObject({ kind: 'untrusted' });
    fs.chmodSync(dir, 0o700);
  });
});
