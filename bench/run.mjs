// Runs every benchmark scenario and prints Markdown tables (npm run bench; add -- --quick for a fast pass).
// Pick scenarios by name: npm run bench -- local-writes convergence
import { cpus, totalmem } from 'node:os';
import { quick } from './lib.mjs';

const scenarios = {
  'local-writes': () => import('./local-writes.mjs'),
  'local-writes-browser': () => import('./browser-local-writes.mjs'),
  convergence: () => import('./convergence.mjs'),
  bootstrap: () => import('./bootstrap.mjs'),
  idle: () => import('./idle.mjs'),
  'live-query': () => import('./live-query.mjs'),
  drain: () => import('./drain.mjs'),
  reconnects: () => import('./reconnects.mjs'),
  hardening: () => import('./hardening.mjs'),
};

const chosen = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const names = chosen.length > 0 ? chosen : Object.keys(scenarios);
console.log(`Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${quick ? 'quick' : 'full'} mode, ${new Date().toISOString()}\n`);
for (const name of names) {
  const load = scenarios[name];
  if (!load) throw new Error(`unknown scenario ${name}; choose from ${Object.keys(scenarios).join(', ')}`);
  const started = performance.now();
  console.log(await (await load()).run());
  console.log(`\n(${name}: ${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
}
