/**
 * The backend API over HTTP (server README, "Backend API"; docs/openapi.json):
 * what a backend service reads of a space without speaking the sync protocol.
 *
 *   GET /api/v1/spaces/{space}/records?after=CURSOR&limit=N   the records that exist, paged
 *   GET /api/v1/spaces/{space}/changes?after=POS&limit=N&wait=S   the change feed, long-polled
 *   GET /api/v1/spaces/{space}/changes/stream?after=POS       the change feed as Server-Sent Events
 *
 * Authorized by a bearer token the server's `authenticate` (or JWT) accepts,
 * for a service (`role: "service"`) that may read the space. Positions are
 * those of the space's log, the ones clients resume from: a consumer that
 * keeps the last `upTo` (or event id) it handled and asks again from there
 * after any cut gets every change once, in log order.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isSpaceId, materialize, SynclineError, type Change, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import type { Logger } from 'pino';
import type { Authenticate } from './auth.js';
import type { Hub } from './hub.js';
import type { LoggedChange, ServerStorage } from './storage/types.js';

/** Changes or records per page, at most (and by default). */
export const API_MAX_LIMIT = 1_000;
const DEFAULT_LIMIT = 500;
/** The longest a long-poll waits (s). */
export const API_MAX_WAIT_S = 30;
/** A comment line on idle event streams, so that proxies keep them open (ms). */
const HEARTBEAT_MS = 15_000;

export interface ApiContext {
  readonly storage: ServerStorage;
  readonly hub: Hub;
  readonly authenticate: Authenticate;
  readonly logger: Logger;
  /** True once the server is closing: waits end, streams close. */
  readonly closing: () => boolean;
  /** Calls back when the server starts closing; returns unsubscribe. */
  readonly onClose: (listener: () => void) => () => void;
}

/** A change as the API shows it (JSON: maps as objects, bytes as base64). */
export interface FeedChange {
  readonly pos: number;
  readonly collection: string;
  readonly id: string;
  readonly replica: ReplicaId;
  readonly seq: number;
  readonly hlc: string;
  readonly op: Change['op'];
  readonly fields?: unknown;
  readonly unset?: readonly string[];
  readonly value?: unknown;
  readonly context?: Record<string, number>;
  readonly field?: string;
  readonly type?: string;
  readonly update?: string;
}

/** A logged change in the API's JSON form. */
export function feedChange(entry: LoggedChange): FeedChange {
  const c = entry.change;
  const head = { pos: entry.pos, collection: c.collection, id: c.id, replica: c.replica, seq: c.seq, hlc: c.hlc, op: c.op };
  switch (c.op) {
    case 'put':
      return { ...head, fields: c.fields };
    case 'patch':
      return { ...head, fields: c.fields, unset: c.unset };
    case 'delete':
      return head;
    case 'version':
      return { ...head, value: c.value, context: Object.fromEntries(c.context) };
    case 'crdt':
      return { ...head, field: c.field, type: c.type, update: Buffer.from(c.update).toString('base64') };
  }
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** Handles a request under /api/ (any error is answered with its status and code). */
export async function handleApi(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const match = /^\/api\/v1\/spaces\/([^/]+)\/(records|changes|changes\/stream)$/.exec(url.pathname);
  try {
    if (!match) throw new ApiError(404, 'not_found', `no such endpoint: ${url.pathname} (see docs/openapi.json)`);
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new ApiError(405, 'method_not_allowed', `${req.method ?? ''} is not allowed here; use GET`);
    let space: string;
    try {
      space = decodeURIComponent(match[1] as string);
    } catch {
      throw new ApiError(400, 'invalid_request', 'the space in the path is not a valid percent-encoding');
    }
    if (!isSpaceId(space)) throw new ApiError(400, 'invalid_request', `not a space id: ${JSON.stringify(space)}`);
    await authorize(ctx, req, space as SpaceId);
    const endpoint = match[2];
    if (endpoint === 'records') await records(ctx, url, space as SpaceId, res);
    else if (endpoint === 'changes') await changes(ctx, url, space as SpaceId, req, res);
    else await stream(ctx, url, space as SpaceId, req, res);
  } catch (error) {
    if (error instanceof ApiError) send(res, error.status, { code: error.code, message: error.message, ...error.extra });
    else {
      ctx.logger.error({ err: error }, 'api error');
      if (!res.headersSent) send(res, 500, { code: 'internal', message: 'internal server error' });
      else res.destroy();
    }
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }).end(JSON.stringify(body));
}

/** A service token that may read `space`: 401 without a valid one, 403 when it is not a service's or not for the space. */
async function authorize(ctx: ApiContext, req: IncomingMessage, space: SpaceId): Promise<void> {
  const header = req.headers.authorization;
  const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
  let grant;
  try {
    grant = await ctx.authenticate({ token, replica: 'api' as ReplicaId, spaces: [space] });
  } catch (error) {
    const code = error instanceof SynclineError && error.code === 'forbidden' ? 'forbidden' : 'unauthenticated';
    throw new ApiError(code === 'forbidden' ? 403 : 401, code, error instanceof Error ? error.message : 'not authenticated');
  }
  if (!grant.service) throw new ApiError(403, 'forbidden', 'the backend API needs a service token (a JWT with "role": "service")');
  if (grant.access(space) === undefined) throw new ApiError(403, 'forbidden', `the token grants no access to space ${space}`);
  if (grant.expiresAt !== undefined && grant.expiresAt <= Date.now()) throw new ApiError(401, 'unauthenticated', 'the token has expired');
}

/** A non-negative integer query parameter within [min, max], or `fallback`. */
function intParam(url: URL, name: string, fallback: number, min: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ApiError(400, 'invalid_request', `${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

/**
 * The records that exist, in (collection, id) order, `limit` per page: `next`
 * is the cursor of the next page (absent on the last). `head` is the space's
 * log position read before the page: every change up to it is in these
 * records, so a mirror that reads every page and then follows the change
 * feed from the first page's `head` misses nothing.
 */
async function records(ctx: ApiContext, url: URL, space: SpaceId, res: ServerResponse): Promise<void> {
  const limit = intParam(url, 'limit', DEFAULT_LIMIT, 1, API_MAX_LIMIT);
  const cursor = url.searchParams.get('after');
  let after: readonly [string, string] | undefined;
  if (cursor !== null && cursor !== '') {
    try {
      const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
      if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[0] !== 'string' || typeof parsed[1] !== 'string') throw new Error('shape');
      after = [parsed[0], parsed[1]];
    } catch {
      throw new ApiError(400, 'invalid_request', 'after is not a cursor this endpoint gave (its `next`)');
    }
  }
  const head = await ctx.storage.head(space);
  const page = await ctx.storage.snapshotPage(space, after, limit);
  const out = [];
  for (const record of page) {
    const view = materialize(record.state);
    if (view.exists) out.push({ collection: record.collection, id: record.id, value: view.value });
  }
  const last = page[page.length - 1];
  const next = page.length === limit && last ? Buffer.from(JSON.stringify([last.collection, last.id])).toString('base64url') : undefined;
  send(res, 200, { space, head, records: out, ...(next !== undefined ? { next } : {}) });
}

/** Changes after `after` (one page), waiting up to `waitMs` for one when there is none. */
async function readChanges(ctx: ApiContext, space: SpaceId, after: number, limit: number, waitMs: number, gone: () => boolean): Promise<{ changes: FeedChange[]; upTo: number }> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    // Listening before reading: a commit between the read and the wait is not missed.
    const advance = waitMs > 0 ? listen(ctx, space, gone) : undefined;
    try {
      await notCompacted(ctx, space, after);
      const head = await ctx.storage.head(space);
      const page = await ctx.storage.readLog(space, after, limit);
      const last = page[page.length - 1];
      // A short page saw every entry up to the head read before it (positions become visible in order).
      const upTo = page.length < limit ? Math.max(head, last?.pos ?? 0, after) : (last as LoggedChange).pos;
      if (page.length > 0 || upTo > after || !advance || Date.now() >= deadline || gone() || ctx.closing()) return { changes: page.map(feedChange), upTo };
      await advance.until(deadline - Date.now());
    } finally {
      advance?.stop();
    }
  }
}

/** A 410 `compacted` when the log of `space` no longer holds what follows `after`. */
async function notCompacted(ctx: ApiContext, space: SpaceId, after: number): Promise<void> {
  const compactedTo = await ctx.storage.horizon(space);
  if (after < compactedTo) {
    throw new ApiError(410, 'compacted', `the log of ${space} up to position ${compactedTo} was compacted; read the records (GET …/records) and follow from their head`, { compactedTo });
  }
}

/**
 * Listens for the next advance of `space` from now on: `until(ms)` resolves
 * when there was one (also before it was called), after `ms`, when the
 * request goes, or when the server closes.
 */
function listen(ctx: ApiContext, space: SpaceId, gone: () => boolean): { until(ms: number): Promise<void>; stop(): void } {
  let fired = false;
  let wake: (() => void) | undefined;
  const fire = (): void => {
    fired = true;
    wake?.();
  };
  // Commits of other instances sharing the database reach the hub too (storage.watch).
  const stops = [ctx.hub.onAdvance((advancedSpace) => advancedSpace === space && fire()), ctx.onClose(fire)];
  return {
    until(ms) {
      if (fired || ctx.closing()) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, ms));
        // A dropped client is looked for.
        const poll = setInterval(() => gone() && done(), 250);
        function done(): void {
          clearTimeout(timer);
          clearInterval(poll);
          wake = undefined;
          resolve();
        }
        wake = done;
      });
    },
    stop() {
      for (const stop of stops) stop();
    },
  };
}

/** GET …/changes: one page of the change feed, long-polled with `wait`. */
async function changes(ctx: ApiContext, url: URL, space: SpaceId, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const after = intParam(url, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
  const limit = intParam(url, 'limit', DEFAULT_LIMIT, 1, API_MAX_LIMIT);
  const waitMs = intParam(url, 'wait', 0, 0, API_MAX_WAIT_S) * 1000;
  let gone = false;
  res.once('close', () => (gone = true));
  const page = await readChanges(ctx, space, after, limit, waitMs, () => gone);
  if (!gone) send(res, 200, { space, changes: page.changes, upTo: page.upTo });
}

/**
 * GET …/changes/stream: the change feed as Server-Sent Events, from `after` or
 * the `Last-Event-ID` a reconnecting EventSource sends. Each change is a
 * `change` event whose id is its position; a `position` event (id: the
 * position) says the log moved past positions with no change of this feed (a
 * merged peer state). A comment every 15 s keeps idle streams open.
 */
async function stream(ctx: ApiContext, url: URL, space: SpaceId, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const lastEventId = req.headers['last-event-id'];
  let after = typeof lastEventId === 'string' && lastEventId !== '' ? Number(lastEventId) : intParam(url, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
  if (!Number.isSafeInteger(after) || after < 0) throw new ApiError(400, 'invalid_request', `Last-Event-ID must be a position, got ${JSON.stringify(lastEventId)}`);
  let gone = false;
  res.once('close', () => (gone = true));
  // A compacted position is refused before the stream starts (a 410, not an event).
  await notCompacted(ctx, space, after);
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no', 'x-content-type-options': 'nosniff' });
  // A client that went away mid-write: nothing more is written (the loop below stops).
  res.on('error', () => (gone = true));
  res.write('retry: 1000\n\n');
  const heartbeat = setInterval(() => gone || res.write(': ping\n\n'), HEARTBEAT_MS);
  const write = async (text: string): Promise<void> => {
    if (gone) return;
    if (!res.write(text)) await new Promise<void>((resolve) => {
      const done = (): void => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.once('drain', done);
      res.once('close', done);
    });
  };
  try {
    while (!gone && !ctx.closing()) {
      let page;
      try {
        page = await readChanges(ctx, space, after, DEFAULT_LIMIT, HEARTBEAT_MS, () => gone);
      } catch (error) {
        if (error instanceof ApiError) {
          await write(`event: error\ndata: ${JSON.stringify({ code: error.code, message: error.message, ...error.extra })}\n\n`);
          break;
        }
        throw error;
      }
      for (const change of page.changes) await write(`id: ${change.pos}\nevent: change\ndata: ${JSON.stringify(change)}\n\n`);
      const last = page.changes[page.changes.length - 1]?.pos ?? after;
      if (page.upTo > last) await write(`id: ${page.upTo}\nevent: position\ndata: ${JSON.stringify({ upTo: page.upTo })}\n\n`);
      after = page.upTo;
    }
  } finally {
    clearInterval(heartbeat);
    res.end();
  }
}
