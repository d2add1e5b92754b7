/**
 * Reads every record a transaction will touch at once (tx.getRecords: requests
 * issued together, and none for records known not to exist), then keeps
 * the latest version of each in memory while the transaction builds on them.
 */
import { addressKey } from './storage/keys.js';
import type { RecordAddress, StorageTx, StoredRecord } from './storage/types.js';

export type { RecordAddress };

const keyOf = (a: RecordAddress): string => addressKey(a.collection, a.id, a.space);

export class RecordCache {
  readonly #records = new Map<string, StoredRecord | undefined>();
  readonly #dirty = new Set<string>();

  static async load(tx: StorageTx, addresses: Iterable<RecordAddress>): Promise<RecordCache> {
    const cache = new RecordCache();
    const keys: string[] = [];
    const unique: RecordAddress[] = [];
    for (const a of addresses) {
      const key = keyOf(a);
      if (cache.#records.has(key)) continue;
      cache.#records.set(key, undefined);
      keys.push(key);
      unique.push(a);
    }
    const records = await tx.getRecords(unique);
    for (let i = 0; i < keys.length; i++) cache.#records.set(keys[i] as string, records[i]);
    return cache;
  }

  get(address: RecordAddress): StoredRecord | undefined {
    return this.#records.get(keyOf(address));
  }

  set(record: StoredRecord): void {
    const key = keyOf(record);
    this.#records.set(key, record);
    this.#dirty.add(key);
  }

  /** Records changed through set(), each once, in the order first changed. */
  changed(): StoredRecord[] {
    return [...this.#dirty].map((key) => this.#records.get(key) as StoredRecord);
  }
}
