/** Writes: creating, editing, moving and deleting events, and their status. */
import type { Replica } from '@syncline/client';
import type { Json } from '@syncline/core';
import type { EventFields, EventStatus } from './model';
import { writeNotes } from './notes';

const fieldsValue = (f: EventFields): Record<string, Json> => ({
  title: f.title,
  start: f.start,
  end: f.end,
  allDay: f.allDay,
  location: f.location,
  ...(f.uid !== undefined ? { uid: f.uid } : {}),
});

export async function createEvent(replica: Replica, id: string, space: string, fields: EventFields, notes: string, status: EventStatus | undefined, by: string): Promise<void> {
  await replica.batch((b) => {
    b.put('events', id, fieldsValue(fields), { space });
    if (status && status !== 'confirmed') b.put('status', id, { status, by, at: Date.now() }, { space });
  });
  if (notes) await writeNotes(replica, id, space, notes);
}

/** Writes only the fields that differ from `current`: concurrent edits of other fields survive (lww per field). */
export async function updateEvent(replica: Replica, id: string, space: string, current: EventFields, next: EventFields): Promise<boolean> {
  const patch: Record<string, Json> = {};
  const a = fieldsValue(current);
  const b = fieldsValue(next);
  for (const name of Object.keys(b)) if (a[name] !== b[name]) patch[name] = b[name] as Json;
  if (Object.keys(patch).length === 0) return false;
  await replica.patch('events', id, patch, { space });
  return true;
}

/** Moves an event to another calendar (space): the same id there, notes and status copied, then deleted here. */
export async function moveEvent(replica: Replica, id: string, from: string, to: string, fields: EventFields, notes: string, status: EventStatus | undefined, by: string): Promise<void> {
  await createEvent(replica, id, to, fields, notes, status, by);
  await deleteEvent(replica, id, from);
}

export async function deleteEvent(replica: Replica, id: string, space: string): Promise<void> {
  const status = await replica.get('status', id, { space });
  await replica.batch((b) => {
    b.delete('events', id, { space });
    if (status) b.delete('status', id, { space });
  });
}

/**
 * Sets the status (a merge collection). The write carries everything this
 * replica has seen of the record, so it supersedes all concurrent versions:
 * choosing one version of a conflict resolves it on every device.
 */
export async function setStatus(replica: Replica, id: string, space: string, status: EventStatus, by: string): Promise<void> {
  await replica.put('status', id, { status, by, at: Date.now() }, { space });
}
