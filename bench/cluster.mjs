// Server processes of the real CLI for the benchmarks: instances on one PostgreSQL database, and the CPU
// time of processes (the instances, PostgreSQL's) from /proc.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort } from './lib.mjs';

/** CPU time (µs, user + system) of the processes with these pids, from /proc. */
export function procCpu(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // a process that exited meanwhile
    }
  }
  return (ticks * 1e6) / 100; // USER_HZ is 100 on Linux
}
export const postgresPids = () => execFileSync('pgrep', ['-x', 'postgres'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);

/** The CLI on PostgreSQL: `instances` processes on one schema; CPU from /proc. */
export async function startCluster(url, instances, schema = `bench_cluster_${process.pid}`) {
  const procs = [];
  const ports = [];
  for (let k = 0; k < instances; k++) {
    const port = await freePort();
    const child = spawn(process.execPath, [fileURLToPath(new URL('../packages/server/bin/syncline-server.js', import.meta.url)), '--port', String(port), '--postgres', url, '--postgres-schema', schema, '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
    // The first creates the schema before the others start.
    for (let tries = 0; ; tries++) {
      const up = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
      if (up) break;
      if (tries > 200) throw new Error(`instance ${k} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    procs.push(child);
    ports.push(port);
  }
  return {
    schema,
    port: ports[0],
    ports,
    cpu: async () => procCpu(procs.map((c) => c.pid)),
    postgresCpu: () => procCpu(postgresPids()),
    async stop() {
      await Promise.all(procs.map((c) => new Promise((resolve) => (c.once('exit', resolve), c.kill('SIGTERM')))));
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`DROP SCHEMA ${schema} CASCADE`);
      await client.end();
    },
  };
}

