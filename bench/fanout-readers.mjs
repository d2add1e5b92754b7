// A process of fan-out readers (bench/fanout.mjs): K raw protocol clients of one space on the server at
// argv[2], argv[3] of them, that note when each change arrives. A change's `t` field is when its write
// started (performance.timeOrigin + performance.now(), comparable across processes on one machine); the
// frame's bytes are searched for it, not decoded, so that the readers cost little beside the server.
// IPC: { type: 'ready' } once all are past their welcome; on { type: 'report' }, { type: 'lags', lags }
// (ms, every arrival) and { type: 'frames', frames }.
import { WebSocket } from 'ws';
import { encodeUpstream, PROTOCOL_VERSION } from '../packages/core/dist/index.js';

const [port, count, space, first] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4], Number(process.argv[5])];
const now = () => performance.timeOrigin + performance.now();
const lags = [];
let frames = 0;
const T = Buffer.from('"t":');
function arrived(data) {
  const at = now();
  frames++;
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  for (let i = buf.indexOf(T); i >= 0; i = buf.indexOf(T, i + 4)) {
    let j = i + 4;
    while (j < buf.length && ((buf[j] >= 48 && buf[j] <= 57) || buf[j] === 46)) j++;
    lags.push(at - Number(buf.toString('latin1', i + 4, j)));
  }
}
let ready = 0;
for (let i = 0; i < count; i++) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/sync`);
  ws.binaryType = 'nodebuffer';
  ws.on('open', () => ws.send(encodeUpstream({ type: 'hello', protocol: PROTOCOL_VERSION, replica: `reader${first + i}`, spaces: [{ space, after: 0 }], time: Date.now() })));
  let welcomed = false;
  ws.on('message', (data) => {
    if (!welcomed) {
      welcomed = true;
      if (++ready === count) process.send({ type: 'ready' });
      return;
    }
    arrived(data);
  });
  ws.on('error', (error) => console.error('reader socket error', error.message));
}
process.on('message', (msg) => {
  if (msg.type === 'report') {
    process.send({ type: 'lags', lags: lags.splice(0), frames });
    frames = 0;
  }
  if (msg.type === 'stop') process.exit(0);
});
