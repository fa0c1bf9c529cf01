/**
 * Loopback ports for tests, without the race of "bind port 0, close, hand out the number" (any
 * listen(0) or outgoing connection on the machine may take the number in between).
 *
 * - refusingPort(): a port on which a connect is refused, and which nobody can listen on while
 *   this test process lives: it is the local end of a loopback connection this process holds.
 *   A SYN to it matches no listener (the held connection has another peer), so the kernel answers
 *   RST (ECONNREFUSED); a bind to it is EADDRINUSE (the holding socket has no SO_REUSEADDR).
 * - freePort(): a port for a program to bind later (sshd, a daemon's listener). It lies below the
 *   kernel's ephemeral range, so no listen(0) and no outgoing connection is given it; a
 *   reservation per port (an abstract unix socket) keeps two test processes, of this or another
 *   checkout, from handing out the same one; and it was free to bind when handed out.
 */
import fs from 'node:fs';
import net from 'node:net';

const held: net.Socket[] = [];

/** A 127.0.0.1 port that refuses connections and cannot be taken for the life of this process. */
export async function refusingPort(): Promise<number> {
  const listener = net.createServer();
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', resolve);
  });
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const near = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    near.once('connect', resolve);
    near.once('error', reject);
  });
  const far = await accepted;
  // Stop listening (close()'s callback would wait for the held connection, so not awaited).
  listener.close();
  for (const socket of [near, far]) {
    socket.on('error', () => {});
    socket.unref();
    held.push(socket);
  }
  return near.localPort!;
}

const reserved = new Set<number>();

/** The ports below the kernel's ephemeral range (ip_local_port_range) that freePort picks from. */
function unclaimedRange(): [number, number] {
  let low = 32_768;
  try {
    low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: keep the IANA ephemeral start
  }
  return [Math.max(1_024, low - 10_000), low - 1];
}

/**
 * Reserves `port` among all test processes on this machine: an abstract unix socket named after
 * it (Linux), which the kernel releases when this process ends, however it ends.
 */
function reserve(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const lock = net.createServer();
    lock.once('error', () => resolve(false));
    lock.listen(`\0twoway-test-port-${port}`, () => {
      lock.unref();
      reserved.add(port);
      resolve(true);
    });
  });
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host: '127.0.0.1', exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** A 127.0.0.1 port nothing listens on, reserved for this process to hand to a program that binds it. */
export async function freePort(): Promise<number> {
  const [low, high] = unclaimedRange();
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (reserved.has(port) || !(await reserve(port))) continue;
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${low}-${high} after 200 tries`);
}
