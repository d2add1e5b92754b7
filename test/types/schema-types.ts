// Type tests: compiled by `npm run typecheck` (tsconfig.test.json), never run. Each
// `@ts-expect-error` fails the type check if the line it marks compiles, so a
// regression in schema inference (a misspelt name accepted, a value type lost)
// fails CI. `tsc -p test/types` checks this folder alone.
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { defineSchema, typed, type Fields, type Replica, type Row, type Schema, type Sibling, type SyncOptions } from '@syncline/client';
import { createHooks, useQuery as untypedUseQuery } from '@syncline/react';
import type * as Y from 'yjs';
import { WebSocket as NodeWebSocket } from 'ws';
import { expectTypeOf } from 'vitest';

interface Event {
  title: string;
  start: number;
  room?: string;
  notes?: string;
}

interface Note {
  text: string;
  tags: string[];
}

/** A Standard Schema validator (what zod, valibot or arktype give), typed by its input. */
declare const taskValidator: StandardSchemaV1<{ done: boolean; label: string }>;

export const schema = defineSchema({
  events: { type: typed<Event>(), indexes: { byStart: ['start'], byRoom: ['room', 'start'] }, crdt: { notes: 'text', extra: 'map' } },
  notes: { type: typed<Note>(), policy: 'merge' },
  tasks: { validate: taskValidator, indexes: { byDone: ['done'] } },
  loose: {},
});
type S = typeof schema;
declare const replica: Replica<S>;

export async function writes(): Promise<void> {
  await replica.put('events', 'e1', { title: 'Standup', start: 900 });
  await replica.put('events', 'e1', { title: 'Standup', start: 900, room: 'Blue' });
  // @ts-expect-error: a misspelt collection
  await replica.put('evnts', 'e1', { title: 'Standup', start: 900 });
  // @ts-expect-error: a value of the wrong shape (start is a number)
  await replica.put('events', 'e1', { title: 'Standup', start: '9:00' });
  // @ts-expect-error: a required field missing
  await replica.put('events', 'e1', { start: 900 });
  // @ts-expect-error: a field the type does not have
  await replica.put('events', 'e1', { title: 'Standup', start: 900, color: 'red' });
  // @ts-expect-error: crdt fields are not written by put (edited through replica.text)
  await replica.put('events', 'e1', { title: 'Standup', start: 900, notes: 'x' });

  await replica.patch('events', 'e1', { room: 'Red' });
  await replica.patch('events', 'e1', { room: undefined }); // removes the field
  // @ts-expect-error: a patch of the wrong type
  await replica.patch('events', 'e1', { start: 'late' });

  // A validator's input type types its collection.
  await replica.put('tasks', 't1', { done: false, label: 'Ship' });
  // @ts-expect-error: the validator's type has no `due`
  await replica.put('tasks', 't1', { done: false, label: 'Ship', due: 1 });

  // A collection with neither type nor validator takes any JSON fields.
  await replica.put('loose', 'l1', { anything: [1, 'two', { three: null }] });

  await replica.batch((b) => {
    b.put('notes', 'n1', { text: 'hi', tags: [] });
    // @ts-expect-error: batches are typed too
    b.put('notes', 'n1', { text: 1, tags: [] });
  });
}

export async function reads(): Promise<void> {
  const row = await replica.get('events', 'e1');
  expectTypeOf(row).toEqualTypeOf<Row<{ title: string; start: number; room?: string } & { readonly notes?: string; readonly extra?: { readonly [key: string]: import('@syncline/client').Json } }> | undefined>();
  expectTypeOf(row!.value.title).toEqualTypeOf<string>();

  const rows = await replica.query({ collection: 'events', index: 'byStart', range: { gte: 900 } });
  expectTypeOf(rows[0]!.value.start).toEqualTypeOf<number>();
  // @ts-expect-error: a misspelt index
  await replica.query({ collection: 'events', index: 'byStrat' });
  // @ts-expect-error: an index of another collection
  await replica.query({ collection: 'tasks', index: 'byStart' });
  // @ts-expect-error: a misspelt collection
  await replica.query({ collection: 'evnts' });
  // @ts-expect-error: a collection without indexes has no index to name
  await replica.count({ collection: 'loose', index: 'any' });

  const tasks = await replica.query({ collection: 'tasks', index: 'byDone', eq: [0] });
  expectTypeOf(tasks[0]!.value).toEqualTypeOf<{ done: boolean; label: string }>();
  const loose = await replica.get('loose', 'l1');
  expectTypeOf(loose!.value).toEqualTypeOf<Fields>();

  replica.subscribe({ collection: 'notes' }, (notes) => {
    expectTypeOf(notes[0]!.value.tags).toEqualTypeOf<string[]>();
  });
  // @ts-expect-error: subscribe checks the index as query does
  replica.subscribe({ collection: 'notes', index: 'byText' }, () => undefined);

  const siblings = await replica.conflicts('notes', 'n1');
  expectTypeOf(siblings).toEqualTypeOf<readonly Sibling<Note>[]>();
  // @ts-expect-error: conflicts() reads merge collections only
  await replica.conflicts('events', 'e1');
}

export async function crdtFields(): Promise<void> {
  expectTypeOf(await replica.text('events', 'e1', 'notes')).toEqualTypeOf<Y.Text>();
  expectTypeOf(await replica.map('events', 'e1', 'extra')).toEqualTypeOf<Y.Map<unknown>>();
  // @ts-expect-error: a misspelt crdt field
  await replica.text('events', 'e1', 'nots');
  // @ts-expect-error: `extra` is a map, not a text
  await replica.text('events', 'e1', 'extra');
  // @ts-expect-error: a plain field is not a crdt field
  await replica.text('events', 'e1', 'title');
  // @ts-expect-error: `notes` has no crdt fields at all
  await replica.array('notes', 'n1', 'tags');
  replica.release('events', 'e1', 'notes');
}

export function hooks(): void {
  const typedHooks = createHooks<S>();
  expectTypeOf(typedHooks.useQuery({ collection: 'events', index: 'byRoom', eq: ['Blue'] }).rows[0]!.value.title).toEqualTypeOf<string>();
  expectTypeOf(typedHooks.useRecord('notes', 'n1').row).toEqualTypeOf<Row<Note> | undefined>();
  expectTypeOf(typedHooks.useConflicts('notes', 'n1')).toEqualTypeOf<readonly Sibling<Note>[]>();
  expectTypeOf(typedHooks.useReplica()).toEqualTypeOf<Replica<S>>();
  // @ts-expect-error: hooks reject a misspelt collection
  typedHooks.useRecord('evnts', 'e1');
  // @ts-expect-error: and a misspelt index
  typedHooks.useQuery({ collection: 'events', index: 'byStrat' });
  // @ts-expect-error: and conflicts of an lww collection
  typedHooks.useConflicts('events', 'e1');
  // The plain hooks stay untyped: rows of JSON fields.
  expectTypeOf(untypedUseQuery({ collection: 'anything' }).rows[0]!.value).toEqualTypeOf<Fields>();
}

export async function untyped(wide: Replica<Schema>, plain: Replica): Promise<void> {
  // A schema known only as `Schema` (built at run time) accepts any names, as before.
  await wide.put('anything', 'x', { a: 1 });
  await plain.query({ collection: 'anything', index: 'any' });
  await plain.text('anything', 'x', 'field');
  expectTypeOf((await plain.get('anything', 'x'))!.value).toEqualTypeOf<Fields>();
  // A typed replica can be passed where an untyped one is expected (providers, helpers).
  const asPlain: Replica = replica;
  void asPlain;
}

export function transports(): void {
  // The `ws` package's WebSocket and the browser's fit `sync.WebSocket` without a cast (client README, "Node and the browser").
  const node: SyncOptions = { url: 'ws://127.0.0.1:8787/sync', WebSocket: NodeWebSocket };
  const browser: SyncOptions = { url: 'ws://127.0.0.1:8787/sync', WebSocket: globalThis.WebSocket };
  void node;
  void browser;
}

export function schemaChecks(): void {
  defineSchema({ events: { type: typed<Event>(), indexes: { byStart: ['start'], byRoom: ['room', 'start'] } } });
  // @ts-expect-error: an index on a field the declared type does not have
  defineSchema({ events: { type: typed<Event>(), indexes: { byStart: ['strat'] } } });
  // Without a declared type, index fields are free (the value is any JSON fields).
  defineSchema({ events: { indexes: { byStart: ['strat'] } } });
}

export async function createChecks(): Promise<void> {
  const { createReplica } = await import('@syncline/client');
  const r = await createReplica({ name: 'x', schema: { events: { type: typed<Event>(), indexes: { byStart: ['start'] } } } });
  expectTypeOf(r).toEqualTypeOf<Replica<{ readonly events: { readonly type: import('@syncline/client').Typed<Event>; readonly indexes: { readonly byStart: readonly ['start'] } } }>>();
}

/** A generic wrapper of createReplica (as apps and test helpers write) compiles. */
export async function wrapper<S extends Schema>(schema: S): Promise<Replica<S>> {
  const { createReplica } = await import('@syncline/client');
  return createReplica({ name: 'wrapped', schema });
}
