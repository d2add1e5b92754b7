// Starts a benchmark server in a child process and talks to it over IPC.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export async function startChild(script, args = []) {
  const child = fork(fileURLToPath(new URL(`./servers/${script}`, import.meta.url)), args, {
    execArgv: ['--expose-gc', ...(process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [])],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting = new Map();
  child.on('message', (msg) => {
    const resolve = waiting.get(msg.type);
    if (resolve) {
      waiting.delete(msg.type);
      resolve(msg);
    }
  });
  const next = (type, timeoutMs = 600_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${script}: no ${type} within ${timeoutMs} ms`)), timeoutMs);
      waiting.set(type, (msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
    });
  const { port } = await next('listening', 30_000);
  return {
    port,
    /** The server process's CPU time so far, µs (user + system). */
    async cpu() {
      const reply = next('cpu');
      child.send({ type: 'cpu' });
      return (await reply).micros;
    },
    async memory() {
      const reply = next('memory');
      child.send({ type: 'memory' });
      return reply;
    },
    async seed(space, records) {
      const reply = next('seeded');
      child.send({ type: 'seed', space, records });
      return reply;
    },
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
