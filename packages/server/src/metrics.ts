import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StorageStats } from './storage/types.js';

/**
 * Process metrics (CPU, memory, event loop lag, GC) are collected once per
 * process: each collection starts an event-loop-delay monitor and a GC observer
 * that are never stopped, so one per server leaked them (and slowed every GC)
 * in processes that create many servers, like tests and the simulation.
 */
let processRegistry: Registry | undefined;

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * One registry per server, so two servers in one process keep separate figures; /metrics adds the process's.
 * `stored` reads what the storage holds when metrics are collected (the `syncline_stored_*` gauges).
 */
export function createMetrics(stored?: () => Promise<StorageStats>) {
  const registry = new Registry();
  // Read once per scrape, shared by the four gauges.
  let reading: Promise<StorageStats | undefined> | undefined;
  const read = (): Promise<StorageStats | undefined> => {
    reading ??= (stored?.() ?? Promise.resolve(undefined))
      .catch(() => undefined)
      .finally(() => setTimeout(() => (reading = undefined), 0));
    return reading;
  };
  const storedGauge = (name: string, help: string, pick: (stats: StorageStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const stats = await read();
        if (stats) this.set(pick(stats));
      },
    });
  return {
    /** The prom-client registry of this server's metrics (not the process's). */
    registry,
    /** Prometheus text of this server's and the process's metrics. */
    text: async (): Promise<string> => `${await processMetrics().metrics()}\n${await registry.metrics()}`,
    /** `syncline_connections`: open sessions. */
    connections: new Gauge({ name: 'syncline_connections', help: 'Open WebSocket connections', registers: [registry] }),
    /** `syncline_changes_stored_total`: changes durably stored (not counting ones already held). */
    changesStored: new Counter({ name: 'syncline_changes_stored_total', help: 'Changes durably stored', registers: [registry] }),
    /** `syncline_changes_relayed_total`: changes sent to other replicas, live and in catch-up. */
    changesRelayed: new Counter({ name: 'syncline_changes_relayed_total', help: 'Changes sent to other replicas', registers: [registry] }),
    /** `syncline_errors_total{code}`: protocol errors sent (and upgrades refused), by code. */
    errors: new Counter({ name: 'syncline_errors_total', help: 'Protocol errors sent, by code', labelNames: ['code'], registers: [registry] }),
    /** `syncline_commit_seconds`: duration of one group commit (storage append), seconds. */
    commitSeconds: new Histogram({
      name: 'syncline_commit_seconds',
      help: 'Time of one group commit',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    /** `syncline_snapshots_total`: snapshots sent in full. */
    snapshots: new Counter({ name: 'syncline_snapshots_total', help: 'Snapshots sent', registers: [registry] }),
    /** `syncline_link_up{peer}`: 1 while the link that follows this peer region is connected. */
    linkUp: new Gauge({ name: 'syncline_link_up', help: 'Region links this server follows: 1 while connected, by peer URL', labelNames: ['peer'], registers: [registry] }),
    /** `syncline_link_lag_changes{peer}`: log entries of the peer not yet read, summed over spaces (as of the peer's last report). */
    linkLagChanges: new Gauge({ name: 'syncline_link_lag_changes', help: "Positions of the peer region's logs not yet read, summed over spaces", labelNames: ['peer'], registers: [registry] }),
    /** `syncline_link_lag_seconds{peer}`: age of the newest change received from the peer when it was stored. */
    linkLagSeconds: new Gauge({ name: 'syncline_link_lag_seconds', help: 'Seconds between the newest received change’s timestamp and its storing here', labelNames: ['peer'], registers: [registry] }),
    /** `syncline_link_changes_total{peer}`: changes received from the peer region and newly stored here. */
    linkChanges: new Counter({ name: 'syncline_link_changes_total', help: 'Changes received over region links and newly stored', labelNames: ['peer'], registers: [registry] }),
    /** `syncline_links_served`: regions following this server now. */
    linksServed: new Gauge({ name: 'syncline_links_served', help: 'Region links served (other regions following this one)', registers: [registry] }),
    /** `syncline_stored_records`: records that exist, over every space (read at each scrape). */
    storedRecords: storedGauge('syncline_stored_records', 'Records that exist (not deleted), over every space', (s) => s.records),
    /** `syncline_stored_tombstones`: deleted records whose state is kept, over every space. */
    storedTombstones: storedGauge('syncline_stored_tombstones', 'Deleted records whose state is kept (tombstones), over every space', (s) => s.tombstones),
    /** `syncline_stored_record_bytes`: bytes of stored record states, tombstones included. */
    storedRecordBytes: storedGauge('syncline_stored_record_bytes', 'Bytes of stored record states, tombstones included', (s) => s.recordBytes),
    /** `syncline_stored_log_entries`: log entries kept (compaction removes them). */
    storedLogEntries: storedGauge('syncline_stored_log_entries', 'Log entries kept', (s) => s.logEntries),
    /** `syncline_frames_dropped_total{reason}`: frames dropped unread; reason `rate` (over messagesPerSecond). */
    framesDropped: new Counter({ name: 'syncline_frames_dropped_total', help: 'Frames dropped unread, by reason (rate: over messagesPerSecond)', labelNames: ['reason'], registers: [registry] }),
    /** `syncline_gc_collected_total`: deleted records forgotten at the stability horizon. */
    gcCollected: new Counter({ name: 'syncline_gc_collected_total', help: 'Deleted records forgotten at the stability horizon', registers: [registry] }),
    /** `syncline_replicas_retired_total{reason}`: replicas retired; reason `inactive` (gc.retireAfterMs) or `operator` (retire()). */
    replicasRetired: new Counter({ name: 'syncline_replicas_retired_total', help: 'Replicas retired, by reason (inactive, operator, below_horizon, peer)', labelNames: ['reason'], registers: [registry] }),
    /** `syncline_gc_horizon_lag_seconds`: how far the oldest space horizon is behind the server's clock, after the last gc pass. */
    gcHorizonLag: new Gauge({ name: 'syncline_gc_horizon_lag_seconds', help: "Seconds between the server's clock and the oldest space's stability horizon, at the last gc pass", registers: [registry] }),
  };
}

/** A server's metrics (SyncServer.metrics): prom-client counters, gauges and a histogram in one registry. */
export type Metrics = ReturnType<typeof createMetrics>;
