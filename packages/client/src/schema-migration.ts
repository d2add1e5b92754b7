/**
 * Brings a database in line with the schema it is opened with. Index numbers are
 * assigned once and persisted; an index that is new, changed or removed makes the
 * collection's index keys be recomputed in the same transaction, so adding a
 * collection or an index later upgrades the data in place.
 */
import type { CrdtType } from '@syncline/core/internal';
import { indexKey, indexKeys, type CollectionDef, type IndexDef, type Schema } from './schema.js';
import type { StorageTx } from './storage/types.js';

const META_INDEXES = 'indexes';

/** Persisted: [collection, index, fields, number]. */
type IndexRow = [string, string, string[], number];

export async function openCollections(tx: StorageTx, schema: Schema): Promise<Map<string, CollectionDef>> {
  const stored = (await tx.getMeta<IndexRow[]>(META_INDEXES)) ?? [];
  const known = new Map(stored.map((row) => [indexKey(row[0], row[1]), row]));
  let next = stored.reduce((max, row) => Math.max(max, row[3]), 0) + 1;
  const rows: IndexRow[] = [];
  const rebuild = new Set<string>();
  const collections = new Map<string, CollectionDef>();

  for (const name of Object.keys(schema)) {
    const def = schema[name] as Schema[string];
    const indexes = new Map<string, IndexDef>();
    for (const index of Object.keys(def.indexes ?? {})) {
      const fields = [...((def.indexes as Record<string, readonly string[]>)[index] as readonly string[])];
      const old = known.get(indexKey(name, index));
      let number: number;
      if (old && JSON.stringify(old[2]) === JSON.stringify(fields)) number = old[3];
      else {
        number = next++;
        rebuild.add(name);
      }
      rows.push([name, index, fields, number]);
      indexes.set(index, { collection: name, name: index, fields, number });
    }
    const crdt = new Map<string, CrdtType>(Object.entries(def.crdt ?? {}));
    collections.set(name, { name, policy: def.policy ?? 'lww', resolve: def.resolve, crdt, indexes, validate: def.validate });
  }
  const current = new Set(rows.map((r) => indexKey(r[0], r[1])));
  for (const row of stored) if (!current.has(indexKey(row[0], row[1]))) rebuild.add(row[0]);

  for (const name of rebuild) {
    const def = collections.get(name);
    for (const record of await tx.scanRecords(name)) {
      await tx.putRecord({ ...record, ix: def ? indexKeys(def, record.id, record.space, record.value) : [] });
    }
  }
  if (rebuild.size > 0 || rows.length !== stored.length) await tx.setMeta(META_INDEXES, rows);
  return collections;
}
