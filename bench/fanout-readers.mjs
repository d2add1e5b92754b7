// A process of fan-out readers (bench/fanout.mjs): K raw protocol clients of one space, argv[3] of them, on
// the servers at the ports of argv[2] (comma-separated: reader i on port i mod n), that note when each
// change arrives. They connect at most argv[6] per second (default: all at once), under a server's
// per-address connection rate. A change's `t` field is when its write
// started (performance.timeOrigin + performance.now(), comparable across processes on one machine); the
// frame's bytes are searched for it, not decoded, so that the readers cost little beside the server.
// Lags are kept as a histogram (buckets 1% wide). IPC: { type: 'ready' } once all are past their welcome;
// on { type: 'report' }, { type: 'count', count, frames } (arrivals and frames since the last `histogram`);
// on { type: 'histogram' }, { type: 'histogram', buckets: [[bucket, count], ...] }, and a fresh start.
import { WebSocket } from 'ws';
import { encodeUpstream, PROTOCOL_VERSION } from '../packages/core/dist/index.js';

const [ports, sockets, space, first] = [process.argv[2].split(',').map(Number), Number(process.argv[3]), process.argv[4], Number(process.argv[5])];
const perSecond = Number(process.argv[6] ?? Infinity);
const now = () => performance.timeOrigin + performance.now();
let buckets = new Map();
let count = 0;
let frames = 0;
/** A lag's bucket: lags within 1% of each other share one (bench/fanout.mjs reads them back). */
const bucketOf = (ms) => Math.max(0, Math.floor(Math.log(Math.max(ms, 0.01) / 0.01) / Math.log(1.01)));
const T = Buffer.from('"t":');
function arrived(data) {
  const at = now();
  frames++;
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  for (let i = buf.indexOf(T); i >= 0; i = buf.indexOf(T, i + 4)) {
    let j = i + 4;
    while (j < buf.length && ((buf[j] >= 48 && buf[j] <= 57) || buf[j] === 46)) j++;
    const b = bucketOf(at - Number(buf.toString('latin1', i + 4, j)));
    buckets.set(b, (buckets.get(b) ?? 0) + 1);
    count++;
  }
}
let ready = 0;
for (let i = 0; i < sockets; i++) {
  if (i > 0 && Number.isFinite(perSecond) && i % perSecond === 0) await new Promise((resolve) => setTimeout(resolve, 1000));
  const ws = new WebSocket(`ws://127.0.0.1:${ports[(first + i) % ports.length]}/sync`);
  ws.binaryType = 'nodebuffer';
  ws.on('open', () => ws.send(encodeUpstream({ type: 'hello', protocol: PROTOCOL_VERSION, replica: `reader${first + i}`, spaces: [{ space, after: 0 }], time: Date.now() })));
  let welcomed = false;
  ws.on('message', (data) => {
    if (!welcomed) {
      welcomed = true;
      if (++ready === sockets) process.send({ type: 'ready' });
      return;
    }
    arrived(data);
  });
  ws.on('error', (error) => console.error('reader socket error', error.message));
}
process.on('message', (msg) => {
  if (msg.type === 'report') process.send({ type: 'count', count, frames });
  if (msg.type === 'histogram') {
    process.send({ type: 'histogram', buckets: [...buckets] });
    buckets = new Map();
    count = 0;
    frames = 0;
  }
  if (msg.type === 'stop') process.exit(0);
});
