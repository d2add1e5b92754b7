/**
 * What an operator sees of a server (`server.inspect()`, the admin listener's
 * `/inspect`, `syncline-server inspect`): per space its head, compaction and
 * stability horizons, sizes and writers; the open connections; the region
 * links; the retired replicas.
 */
import type { HlcString, ReplicaId, SpaceId } from '@syncline/core/internal';
import type { LinkState } from './server.js';
import type { ServerStorage, WriterInfo } from './storage/types.js';

/** One space, as `inspect` shows it. */
export interface SpaceInspection {
  /** The space's id. */
  readonly space: SpaceId;
  /** The log's last position. */
  readonly head: number;
  /** The compaction horizon: positions at or below it are no longer in the log (0: none compacted). */
  readonly compactedTo: number;
  /** Records that exist. */
  readonly records: number;
  /** Deleted records whose state is kept until the stability horizon passes them. */
  readonly tombstones: number;
  /** Bytes of record states, tombstones included. */
  readonly bytes: number;
  /** The stability horizon (undefined: none yet): with regions, the collection horizon. */
  readonly horizon: HlcString | undefined;
  /** With regions, the refusal level when it is above the collection horizon ("Bounded growth", "With regions"). */
  readonly refused?: HlcString;
  /** Writers it knows, by id, with their progress and when last seen. */
  readonly writers: readonly WriterInfo[];
  /** With a server: its per-space quotas (limits `maxSpaceBytes`, `maxSpaceRecords`), which `bytes` and `records` count against. */
  readonly quota?: {
    /** The most bytes of record states a space may hold (`maxSpaceBytes`). */
    readonly maxBytes: number;
    /** The most records that exist a space may hold (`maxSpaceRecords`). */
    readonly maxRecords: number;
  };
}

/** An open client connection, as `inspect` shows it. */
export interface ConnectionInspection {
  /** Undefined before its hello. */
  readonly replica: ReplicaId | undefined;
  /** Who it authenticated as (undefined before its hello). */
  readonly subject: string | undefined;
  /** The spaces it was granted. */
  readonly spaces: readonly string[];
  /** The peer's address, when the transport knows it. */
  readonly address: string | undefined;
  /** How long it has been open (ms). */
  readonly openMs: number;
}

/** `server.inspect()`. */
export interface Inspection {
  /** The server's region, if it has one. */
  readonly region: string | undefined;
  /** Open client connections (absent when read from a database with no server: `syncline-server inspect --db`). */
  readonly connections?: readonly ConnectionInspection[];
  /** The region links this server follows (with a server). */
  readonly links?: readonly LinkState[];
  /** Every space the storage holds. */
  readonly spaces: readonly SpaceInspection[];
  /** How many replicas are retired. */
  readonly retired: number;
}

/** What `storage` holds, per space (the part of an inspection a database alone can say), with a server's `quota`. */
export async function inspectStorage(storage: ServerStorage, quota?: SpaceInspection['quota']): Promise<{ spaces: SpaceInspection[]; retired: number }> {
  const spaces: SpaceInspection[] = [];
  for (const space of await storage.spaces()) {
    const [head, compactedTo, usage, stored, stability, writers] = await Promise.all([
      storage.head(space),
      storage.horizon(space),
      storage.usage(space),
      storage.countRecords(space),
      storage.stability(space),
      storage.writers(space),
    ]);
    spaces.push({ space, head, compactedTo, records: usage.records, tombstones: stored - usage.records, bytes: usage.bytes, horizon: stability.hlc, ...(stability.refused ? { refused: stability.refused.hlc } : {}), writers, ...(quota ? { quota } : {}) });
  }
  return { spaces, retired: (await storage.retiredList(0, 0)).total };
}

/** An inspection as text for a terminal. */
export function formatInspection(inspection: Inspection, now: number): string {
  const lines: string[] = [];
  if (inspection.region !== undefined) lines.push(`region ${inspection.region}`);
  if (inspection.connections) {
    lines.push(`connections: ${inspection.connections.length}`);
    for (const c of inspection.connections) lines.push(`  ${c.replica ?? '(no hello yet)'}  subject ${c.subject ?? '-'}  from ${c.address ?? '-'}  open ${Math.round(c.openMs / 1000)} s  spaces ${c.spaces.join(', ') || '-'}`);
  }
  for (const link of inspection.links ?? []) lines.push(`link ${link.url} (${link.region ?? 'region not known yet'}): ${link.up ? 'up' : 'down'}, lag ${link.lag}`);
  lines.push(`spaces: ${inspection.spaces.length}; retired replicas: ${inspection.retired}`);
  for (const s of inspection.spaces) {
    const quota = s.quota ? ` (quota: ${percent(s.bytes, s.quota.maxBytes)} of ${s.quota.maxBytes} bytes, ${percent(s.records, s.quota.maxRecords)} of ${s.quota.maxRecords} records)` : '';
    lines.push(`  ${s.space}: head ${s.head}, compacted to ${s.compactedTo}, ${s.records} records, ${s.tombstones} tombstones, ${s.bytes} bytes${quota}, horizon ${s.horizon ?? 'none'}${s.refused ? ` (refuses at or below ${s.refused})` : ''}, ${s.writers.length} writers`);
    for (const w of s.writers.slice(0, 50)) lines.push(`    ${w.replica}  seq ${w.seq}  seen ${w.seen > 0 ? `${Math.round((now - w.seen) / 1000)} s ago` : '-'}${w.retired ? '  retired' : ''}${w.local ? '' : '  (another region\'s)'}`);
    if (s.writers.length > 50) lines.push(`    … ${s.writers.length - 50} more (--json lists them all)`);
  }
  return `${lines.join('\n')}\n`;
}

function percent(used: number, max: number): string {
  const share = max > 0 ? (100 * used) / max : 0;
  return `${share > 0 && share < 1 ? share.toPrecision(2) : share.toFixed(1)}%`;
}
