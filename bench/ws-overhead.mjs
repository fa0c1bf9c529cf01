// What `ws` costs on the data path: 16,384 messages of 65,027 bytes (one twoway record each) over
// loopback, through `ws` (zero mask, as the client sends) and through length-prefixed raw TCP
// (corked header + payload; the receiver slices frames out of socket reads without copying), each in
// its own sender and receiver process; CPU-seconds per GB of each. Bounded: COUNT messages per run,
// MODES runs. Usage: node bench/ws-overhead.mjs   (loopback only)
import net from 'node:net';
import { fork } from 'node:child_process';
import { WebSocketServer, WebSocket } from 'ws';
const MSG = 65_027,
  COUNT = Number(process.env.COUNT ?? 16384),
  HWM = 1 << 20;
const [, , role, mode, port] = process.argv;
const payload = Buffer.alloc(MSG, 7);
function cpu(start) {
  const u = process.cpuUsage(start);
  return (u.user + u.system) / 1e6;
}
if (role === 'recv') {
  let got = 0,
    t0,
    c0;
  const done = () => {
    process.send({ cpu: cpu(c0), secs: Number(process.hrtime.bigint() - t0) / 1e9 });
    setTimeout(() => process.exit(0), 50);
  };
  const onMsg = () => {
    if (got === 0) {
      t0 = process.hrtime.bigint();
      c0 = process.cpuUsage();
    }
    if (++got === COUNT) done();
  };
  if (mode === 'ws') {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 70000, skipUTF8Validation: true }, () =>
      process.send({ port: wss.address().port }),
    );
    wss.on('connection', (ws) => ws.on('message', (d) => onMsg(d.length)));
  } else {
    const srv = net
      .createServer((s) => {
        let need = -1,
          parts = [],
          have = 0,
          header = Buffer.alloc(0);
        s.on('data', (chunk) => {
          let off = 0;
          while (off < chunk.length) {
            if (need < 0) {
              const h = Math.min(4 - header.length, chunk.length - off);
              header = Buffer.concat([header, chunk.subarray(off, off + h)]);
              off += h;
              if (header.length < 4) break;
              need = header.readUInt32BE(0);
              header = Buffer.alloc(0);
            }
            const take = Math.min(need - have, chunk.length - off);
            parts.push(chunk.subarray(off, off + take));
            have += take;
            off += take;
            if (have === need) {
              onMsg(need);
              parts = [];
              have = 0;
              need = -1;
            }
          }
        });
      })
      .listen(0, '127.0.0.1', () => process.send({ port: srv.address().port }));
  }
} else if (role === 'send') {
  const c0 = process.cpuUsage();
  if (mode === 'ws') {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, generateMask: (m) => m.fill(0) });
    ws.on('open', () => {
      let sent = 0;
      const pump = () => {
        while (sent < COUNT) {
          sent++;
          const b = Buffer.from(payload);
          if (ws.bufferedAmount + MSG > HWM) {
            ws.send(b, pump);
            return;
          }
          ws.send(b);
        }
        process.send({ cpu: cpu(c0) });
      };
      pump();
    });
  } else {
    const s = net.connect(Number(port), '127.0.0.1', () => {
      let sent = 0;
      const pump = () => {
        while (sent < COUNT) {
          sent++;
          const b = Buffer.from(payload);
          const h = Buffer.allocUnsafe(4);
          h.writeUInt32BE(MSG);
          s.cork();
          s.write(h);
          const ok = s.write(b);
          s.uncork();
          if (!ok) {
            s.once('drain', pump);
            return;
          }
        }
        process.send({ cpu: cpu(c0) });
      };
      pump();
    });
  }
} else {
  for (const m of (process.env.MODES ?? 'ws raw ws raw ws raw').split(' ')) {
    const r = fork(process.argv[1], ['recv', m]);
    const { port } = await new Promise((res) => r.once('message', res));
    const s = fork(process.argv[1], ['send', m, String(port)]);
    const sres = await new Promise((res) => s.once('message', res));
    const rres = await new Promise((res) => r.once('message', res));
    s.kill();
    const gb = (MSG * COUNT) / 1e9;
    console.log(
      m.padEnd(4),
      'MB/s',
      Math.round((gb * 1000) / rres.secs),
      ' send CPU-s/GB',
      (sres.cpu / gb).toFixed(2),
      ' recv CPU-s/GB',
      (rres.cpu / gb).toFixed(2),
    );
  }
}
