/**
 * What a replica holds, read back for the checks, and the convergence check
 * both simulations make: every replica of a space holds the same record states,
 * and what they show (values, siblings) is what the oracle computes from the
 * log.
 */
import type { Replica } from '@syncline/client';
import { canonicalState, collectibleAt, materialize, withoutRetired, type Change, type RecordState, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import { canonical, expectedState } from './oracle.js';
import { COLLECTIONS, MERGE_COLLECTIONS } from './workload.js';
import { storageOf } from '../internals.js';

export interface ReplicaDump {
  /** Every stored record state that garbage collection would keep, canonical, one line each, sorted. */
  readonly states: string;
  readonly visible: Map<string, { value: string }>;
  /** merge records with siblings: "replica:seq" of each, sorted. */
  readonly siblings: Map<string, string[]>;
}

/**
 * `retired`: replica ids the server retired. Their merge-context entries that
 * no sibling needs are left out of the states compared: the server drops them
 * (a replica that bootstraps then has none), and a replica that applied the
 * log keeps them; both show and do the same (test/core/merge-trim.property.test.ts).
 */
export async function dumpReplica(r: Replica, space: string, retired: ReadonlySet<string> = new Set()): Promise<ReplicaDump> {
  const gone = (replica: ReplicaId): boolean => retired.has(replica);
  const lines: string[] = [];
  const visible = new Map<string, { value: string }>();
  const siblings = new Map<string, string[]>();
  for (const collection of COLLECTIONS) {
    const stored = await storageOf(r).transaction('readonly', (tx) => tx.scanRecords(collection, { space: space as SpaceId }));
    // A deleted record one replica has forgotten (garbage collection) and another still holds shows the same: not
    // compared. Nor are the put and delete stamps of a record that exists: one that was forgotten and written again
    // has none from before (what it shows is compared with the oracle below, field by field).
    for (const record of stored) if (collectibleAt(record.state) === undefined) lines.push(`${collection}/${record.id}=${canonicalState(withoutHistory(withoutRetired(record.state, gone)))}`);
    for (const row of await r.query({ collection, space })) visible.set(`${collection}\u0000${row.id}`, { value: canonical(row.value) });
    if (MERGE_COLLECTIONS.has(collection)) {
      for (const record of stored) {
        const versions = await r.conflicts(collection, record.id, { space });
        if (versions.length > 0) siblings.set(`${collection}\u0000${record.id}`, versions.map((v) => `${v.replica}:${v.seq}`).sort());
      }
    }
  }
  return { states: lines.sort().join('\n'), visible, siblings };
}

/**
 * The merge-context entries of `retired` replicas that no sibling needs which
 * replica `r` still holds in `space` (each as "collection/id: replica"): none
 * once it has heard of the retirements (protocol 7, client retired.ts).
 */
export async function retiredEntries(r: Replica, space: string, retired: ReadonlySet<string>): Promise<string[]> {
  const out: string[] = [];
  for (const collection of MERGE_COLLECTIONS) {
    const stored = await storageOf(r).transaction('readonly', (tx) => tx.scanRecords(collection, { space: space as SpaceId }));
    for (const record of stored) {
      const merge = record.state.merge;
      if (!merge) continue;
      const holders = new Set(merge.siblings.map((v) => v.replica as string));
      const contexts = [merge.seen, ...merge.siblings.map((v) => v.context)];
      const left = new Set(contexts.flatMap((v) => [...v.keys()].filter((replica) => retired.has(replica) && !holders.has(replica))));
      for (const replica of left) out.push(`${collection}/${record.id}: ${replica}`);
    }
  }
  return out;
}

/**
 * A record that exists, without the put and delete stamps of its lww part (see
 * dumpReplica; a put before the last delete goes too); an lww part left with
 * nothing (a delete, then crdt edits) goes. A deleted record keeps its delete
 * and loses a put from before it.
 */
export function withoutHistory(state: RecordState): RecordState {
  const { lww } = state;
  if (!lww) return state;
  if (!materialize(state).exists) {
    // A deleted record held for its crdt part: a put before its last delete is history as well (a region that
    // forgot the record, then took the delete again with later crdt edits, holds none). It can never make the
    // record exist again; only a write stamped after the delete can.
    const before = lww.touched !== undefined && lww.deleted !== undefined && lww.touched <= lww.deleted;
    return before ? { ...state, lww: { ...lww, touched: undefined, stamped: undefined } } : state;
  }
  // A put before the last delete is history too (a region that forgot the deleted record, then took crdt edits
  // made after the delete, holds no lww part at all).
  const before = lww.touched !== undefined && lww.deleted !== undefined && lww.touched <= lww.deleted;
  const rest = { ...lww, cleared: undefined, deleted: undefined, ...(before ? { touched: undefined, stamped: undefined } : {}) };
  if (rest.touched === undefined && rest.fields.size === 0 && rest.stamped === undefined) {
    const { lww: _, ...others } = state;
    return others;
  }
  return { ...state, lww: rest };
}

/**
 * Checks that the holders of a space agree with each other and with the oracle
 * run over `log` (every change of the space, in any order); returns each
 * holder's state dump (for a run's digest). `read` runs a read to completion
 * (under virtual time, the simulation's drive); `retired` as for dumpReplica.
 */
export async function checkConvergence(
  space: string,
  log: readonly Change[],
  holders: ReadonlyArray<{ readonly label: string; readonly replica: Replica }>,
  fail: (message: string) => void,
  read: <T>(promise: Promise<T>) => Promise<T>,
  retired?: ReadonlySet<string>,
): Promise<string[]> {
  const expected = expectedState(log);
  const states: string[] = [];
  let reference: { label: string; states: string } | undefined;
  for (const { label: who, replica } of holders) {
    const dump = await read(dumpReplica(replica, space, retired));
    states.push(dump.states);
    if (!reference) reference = { label: who, states: dump.states };
    else if (reference.states !== dump.states) fail(`${who} and ${reference.label} differ in ${space}: ${firstDifference(reference.states, dump.states)}`);
    for (const [key, want] of expected) {
      const got = dump.visible.get(key);
      const label = `${who} ${space} ${key.replace('\u0000', '/')}`;
      if (want.exists !== (got !== undefined)) fail(`${label}: expected ${want.exists ? `value ${want.value}` : 'deleted'}, replica has ${got?.value ?? 'nothing'}`);
      else if (got && got.value !== want.value) fail(`${label}: expected ${want.value}, replica has ${got.value}`);
      const siblings = dump.siblings.get(key) ?? [];
      const wantSiblings = want.siblings.length > 1 ? want.siblings : [];
      if (siblings.join() !== wantSiblings.join()) fail(`${label}: expected siblings [${wantSiblings.join()}], replica has [${siblings.join()}]`);
    }
    for (const key of dump.visible.keys()) if (!expected.has(key)) fail(`${who} ${space} holds ${key} that nobody wrote`);
  }
  return states;
}

export function firstDifference(a: string, b: string): string {
  const la = a.split('\n');
  const lb = b.split('\n');
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (la[i] !== lb[i]) return `${la[i] ?? '(none)'} vs ${lb[i] ?? '(none)'}`;
  }
  return '(same)';
}
