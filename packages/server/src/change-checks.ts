/**
 * What the server checks of every change it is asked to store, whoever wrote
 * it: a client's push (session.ts) or the backend API (writer.ts).
 */
import { changeBytes, checkCrdtUpdate, mayExceedChangeLimit, MAX_CHANGE_BYTES, ProtocolError, validateChange, type Change } from '@syncline/core/internal';

/**
 * Throws (InvalidChangeError, or ProtocolError `too_large`) when `change` is
 * not one to store: its values (validateChange), its size (MAX_CHANGE_BYTES,
 * the replicas' own write-time maximum), and a crdt update every replica can
 * read: a malformed one must be refused here, not stored and relayed to break
 * every replica that applies it.
 */
export function checkChange(change: Change): void {
  validateChange(change);
  if (mayExceedChangeLimit(change)) {
    const bytes = changeBytes(change);
    if (bytes > MAX_CHANGE_BYTES) throw new ProtocolError('too_large', `the change takes ${bytes} bytes, more than the ${MAX_CHANGE_BYTES} one change may take (MAX_CHANGE_BYTES)`);
  }
  if (change.op === 'crdt') checkCrdtUpdate(change.update);
}
