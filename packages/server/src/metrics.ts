import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per server, so two servers in one process keep separate figures. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    connections: new Gauge({ name: 'syncline_connections', help: 'Open WebSocket connections', registers: [registry] }),
    changesStored: new Counter({ name: 'syncline_changes_stored_total', help: 'Changes durably stored', registers: [registry] }),
    changesRelayed: new Counter({ name: 'syncline_changes_relayed_total', help: 'Changes sent to other replicas', registers: [registry] }),
    errors: new Counter({ name: 'syncline_errors_total', help: 'Protocol errors sent, by code', labelNames: ['code'], registers: [registry] }),
    commitSeconds: new Histogram({
      name: 'syncline_commit_seconds',
      help: 'Time of one group commit',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    snapshots: new Counter({ name: 'syncline_snapshots_total', help: 'Snapshots sent', registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
