/**
 * Retired replicas' merge-context entries (client README, "Bounded growth";
 * server README, the same). A server without a region tells its clients which
 * replicas it retired (`retired`, protocol 7). A retired replica writes no
 * more and none of its versions is applied again here (its changes came once,
 * in log order), so a merge record's entries of it that no sibling needs
 * change nothing (core withoutRetired): they are dropped from every record
 * the replica holds when it hears, and from what it stores after. Not with a
 * server of a region: snapshots are then joined, which needs them.
 */
import { withoutRetired, type RecordState, type ReplicaId } from '@syncline/core/internal';
import { META_RETIRED, META_RETIRED_HEARD } from './meta.js';
import type { CollectionDef } from './schema.js';
import type { StorageTx, StoredRecord } from './storage/types.js';

/** What a replica does with a record state before storing it: drops retired replicas' entries (identity when there are none). */
export type Trim = (state: RecordState) => RecordState;

/**
 * The trim for what a replica heard (META_RETIRED), or undefined when it
 * heard of none. One per replica: the list is read again only when the count
 * heard (META_RETIRED_HEARD, a number) moved, so a transaction that may need
 * it reads one number, however many replicas were retired.
 */
export class RetiredTrim {
  #heard = 0;
  #trim: Trim | undefined;

  async of(tx: StorageTx): Promise<Trim | undefined> {
    const heard = (await tx.getMeta<number>(META_RETIRED_HEARD)) ?? 0;
    if (heard !== this.#heard) {
      const retired = await tx.getMeta<ReplicaId[]>(META_RETIRED);
      const gone = new Set(retired ?? []);
      this.#trim = gone.size > 0 ? (state) => withoutRetired(state, (replica) => gone.has(replica)) : undefined;
      this.#heard = heard;
    }
    return this.#trim;
  }
}

/**
 * A `retired` message: notes `replicas` (and that `upTo` retirements were
 * heard), and drops their entries from every merge record held, in every
 * space. Resolves to the records rewritten, for the caller to store in the
 * same transaction.
 */
export async function hearRetired(tx: StorageTx, collections: ReadonlyMap<string, CollectionDef>, replicas: readonly ReplicaId[], upTo: number): Promise<StoredRecord[]> {
  const [known, heard] = await Promise.all([tx.getMeta<ReplicaId[]>(META_RETIRED), tx.getMeta<number>(META_RETIRED_HEARD)]);
  const all = [...new Set([...(known ?? []), ...replicas])];
  const gone = new Set(all);
  const rewritten: StoredRecord[] = [];
  for (const [name, def] of collections) {
    if (def.policy !== 'merge') continue;
    for (const record of await tx.scanRecords(name)) {
      const state = withoutRetired(record.state, (replica) => gone.has(replica));
      if (state !== record.state) rewritten.push({ ...record, state });
    }
  }
  await Promise.all([tx.setMeta(META_RETIRED, all), tx.setMeta(META_RETIRED_HEARD, Math.max(heard ?? 0, upTo))]);
  return rewritten;
}
