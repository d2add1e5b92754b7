// The Syncline server in its own process, so its memory is measured alone.
// Messages: { type: 'seed', records, space } fills the space; { type: 'memory' } reports memory.
import { pino } from 'pino';
import { createSyncServer, sqliteStorage } from '../../packages/server/dist/index.js';
import { formatTimestamp } from '../../packages/core/dist/index.js';
import { event } from '../lib.mjs';

// Arguments: the database path (default in memory), and a mode: `many-connections` for the idle scenario,
// `browser` for pages served from another origin (the browser scenarios: their page is on another port).
const [path = ':memory:', mode] = process.argv.slice(2);
const storage = sqliteStorage({ path });
const server = createSyncServer({
  port: 0,
  storage,
  logger: pino({ level: 'silent' }),
  // Default limits, as users run it. Only the idle scenario raises the connection caps: it opens thousands of
  // connections from one address, where a real deployment would see thousands of addresses.
  ...(mode === 'many-connections'
    ? { limits: { maxConnections: 100_000, maxPendingConnections: 100_000, maxPendingPerAddress: 100_000, connectionsPerSecondPerAddress: 100_000 } }
    : {}),
  ...(mode === 'browser' ? { allowedOrigins: '*' } : {}),
});
const port = await server.listen();
process.send({ type: 'listening', port });
process.on('message', async (msg) => {
  if (msg.type === 'seed') {
    const replica = 'seeder';
    for (let start = 0; start < msg.records; start += 5_000) {
      const changes = [];
      for (let i = start; i < Math.min(msg.records, start + 5_000); i++) {
        changes.push({
          space: msg.space, collection: 'events', id: `e${i}`, replica, seq: i + 1,
          hlc: formatTimestamp({ wall: 1_790_000_000_000 + i, counter: 0, replica }), op: 'put', fields: event(i),
        });
      }
      const [result] = await storage.append([{ space: msg.space, replica, changes }]);
      if (result instanceof Error) throw result;
    }
    process.send({ type: 'seeded' });
  }
  if (msg.type === 'cpu') {
    const { user, system } = process.cpuUsage();
    process.send({ type: 'cpu', micros: user + system });
  }
  if (msg.type === 'memory') {
    globalThis.gc?.();
    process.send({ type: 'memory', rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed });
  }
  if (msg.type === 'stop') {
    await server.close();
    process.exit(0);
  }
});
