import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { waitUntil } from './wait.js';

/**
 * A fake service manager for NOTIFY_SOCKET: a unix datagram socket (python3, since Node has none)
 * that prints each datagram as a JSON line and closes any passed fds, which is how systemd
 * completes the BARRIER=1 handshake systemd-notify waits for.
 */
const SCRIPT = `
import json, socket, sys, os, array
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
s.settimeout(float(sys.argv[2]))
print(json.dumps("listening"), flush=True)
while True:
    data, anc, _f, _a = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    print(json.dumps(data.decode()), flush=True)
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i"); fds.frombytes(payload[: len(payload) - len(payload) % 4])
            for fd in fds: os.close(fd)
`;

export interface FakeServiceManager {
  readonly socketPath: string;
  /** Every datagram received so far, in order (the first entry is the start marker 'listening'). */
  readonly notified: string[];
  /** The datagrams only, without the start marker. */
  messages(): string[];
  /** Forget what was received (keeps the start marker). */
  clear(): void;
  stop(): void;
}

/**
 * Binds `socketPath` (mode 0666, so a daemon under another uid can reach it) and resolves once it
 * listens. The python process gives up after `idleSeconds` without a datagram.
 */
export async function startFakeServiceManager(socketPath: string, idleSeconds = 60): Promise<FakeServiceManager> {
  const child: ChildProcess = spawn('python3', ['-c', SCRIPT, socketPath, String(idleSeconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const notified: string[] = [];
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) if (l !== '') notified.push(JSON.parse(l) as string);
  });
  await waitUntil(() => notified.includes('listening'), 'the fake service manager', 10_000);
  return {
    socketPath,
    notified,
    messages: () => notified.filter((m, i) => !(i === 0 && m === 'listening')),
    clear: () => void notified.splice(0, notified.length, 'listening'),
    stop: () => {
      if (child.exitCode === null) child.kill();
      fs.rmSync(socketPath, { force: true });
    },
  };
}
