// Baseline: a bare ws relay. Forwards every message to every other client and does nothing else.
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 64 * 1024 * 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const other of wss.clients) if (other !== ws && other.readyState === 1) other.send(data, { binary: isBinary });
  });
});
wss.on('listening', () => process.send({ type: 'listening', port: wss.address().port }));
process.on('message', (msg) => {
  if (msg.type === 'memory') {
    globalThis.gc?.();
    process.send({ type: 'memory', rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed });
  }
  if (msg.type === 'stop') wss.close(() => process.exit(0));
});
