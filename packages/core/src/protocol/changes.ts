/**
 * The changes of a `changes` message in a compact form. Every replica receives
 * every change, so each byte and each check here is paid once per receiver:
 * instead of an object per change repeating its space, replica and a 40-character
 * HLC string, a list is
 *
 *   [base, replicas, [[space, [row, ...]], ...]]
 *   row = [collection, id, replica index, seq, hlc, op, ...payload]
 *
 * with the payload by op: put `fields`; patch `fields, unset`; delete nothing;
 * version `value | null, context`; crdt `field, type, update`. `base` and
 * `replicas` are a clock table as in snapshots (state.ts): an hlc is an integer of
 * the table or an HLC string. Changes keep their order; consecutive changes of
 * one space share a group.
 */
import { CRDT_TYPES, type Change } from '../change.js';
import type { HlcString } from '../hlc.js';
import type { ReplicaId, SpaceId } from '../ids.js';
import { name, recordId, replicaId, seq, spaceId, versionVector } from './common.js';
import { array, bytes, fields, invalid, nullable, oneOf, type ReadContext, type Schema } from './schema.js';
import { HlcTable, readClocked, writeClocked } from './state.js';

const unset = array(name);
const crdtType = oneOf(CRDT_TYPES);
const valueOrNull = nullable(fields);
/** Row length per op: 6 header items and the op's payload. */
const ROW_LENGTH: Readonly<Record<Change['op'], number>> = { put: 7, patch: 8, delete: 6, version: 8, crdt: 9 };

export function compactChanges(max: number): Schema<Change[]> {
  return {
    describe: `compactChanges(base:int,replicas:${replicaId.describe},space:${spaceId.describe},[${name.describe},${recordId.describe},int,${seq.describe},hlc,op,put:${fields.describe}|patch:${unset.describe}|version:${valueOrNull.describe},${versionVector.describe}|crdt:${crdtType.describe},${bytes.describe}],${max})`,
    identity: false,
    read: (value, ctx, path) => readClocked(value, ctx, path, max, spaceId, (row, space, clock, where) => readRow(row, space, clock, ctx, where)),
    write(changes, ctx) {
      const clock = HlcTable.build(
        (visit) => {
          for (const change of changes) visit(change.hlc);
        },
        changes.map((c) => c.replica),
      );
      return writeClocked(changes, clock, (c) => c.space, (change) => {
        const row: unknown[] = [change.collection, change.id, clock.indexOf(change.replica), change.seq, clock.write(change.hlc), change.op];
        switch (change.op) {
          case 'put':
            row.push(change.fields);
            break;
          case 'patch':
            row.push(change.fields, change.unset);
            break;
          case 'delete':
            break;
          case 'version':
            row.push(change.value, versionVector.write(change.context, ctx));
            break;
          case 'crdt':
            row.push(change.field, change.type, bytes.write(change.update, ctx));
            break;
        }
        return row;
      });
    },
  };
}

function readRow(value: unknown, space: SpaceId, clock: HlcTable, ctx: ReadContext, path: string): Change {
  if (!Array.isArray(value) || value.length < 6) invalid(path, 'a [collection, id, replica, seq, hlc, op, ...] change');
  const op = value[5] as Change['op'];
  if (typeof op !== 'string' || !Object.hasOwn(ROW_LENGTH, op)) invalid(`${path}[5]`, `one of ${Object.keys(ROW_LENGTH).join(', ')}`);
  if (value.length !== ROW_LENGTH[op]) invalid(path, `a ${op} change of ${ROW_LENGTH[op]} items`);
  const r = value[2] as unknown;
  if (!Number.isSafeInteger(r) || (r as number) < 0 || (r as number) >= clock.replicas.length) invalid(`${path}[2]`, 'an index of the replica table');
  const collection = name.read(value[0], ctx, `${path}[0]`);
  const id = recordId.read(value[1], ctx, `${path}[1]`);
  const replica = clock.replicas[r as number] as ReplicaId;
  const sq = seq.read(value[3], ctx, `${path}[3]`);
  const stamp = clock.read(value[4], `${path}[4]`) as HlcString;
  // Each change built whole, not spread from a header: this runs for every change received.
  switch (op) {
    case 'put':
      return { space, collection, id, replica, seq: sq, hlc: stamp, op, fields: fields.read(value[6], ctx, `${path}[6]`) };
    case 'patch':
      return { space, collection, id, replica, seq: sq, hlc: stamp, op, fields: fields.read(value[6], ctx, `${path}[6]`), unset: unset.read(value[7], ctx, `${path}[7]`) };
    case 'delete':
      return { space, collection, id, replica, seq: sq, hlc: stamp, op };
    case 'version':
      return { space, collection, id, replica, seq: sq, hlc: stamp, op, value: valueOrNull.read(value[6], ctx, `${path}[6]`), context: versionVector.read(value[7], ctx, `${path}[7]`) };
    case 'crdt':
      return {
        space, collection, id, replica, seq: sq, hlc: stamp, op,
        field: name.read(value[6], ctx, `${path}[6]`), type: crdtType.read(value[7], ctx, `${path}[7]`), update: bytes.read(value[8], ctx, `${path}[8]`),
      };
  }
}
