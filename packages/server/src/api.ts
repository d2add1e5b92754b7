/**
 * The backend API over HTTP (server README, "Backend API"; docs/openapi.json):
 * what a backend service reads of a space without speaking the sync protocol.
 *
 *   GET /api/v1/spaces/{space}/records?collection=C&from=ID&to=ID&after=CURSOR&limit=N   the records that exist, paged
 *   GET|PUT|PATCH|DELETE /api/v1/spaces/{space}/records/{collection}/{id}   one record
 *   POST /api/v1/spaces/{space}/writes                        several writes in one transaction
 *   GET /api/v1/spaces/{space}/changes?after=POS&limit=N&wait=S   the change feed, long-polled
 *   GET /api/v1/spaces/{space}/changes/stream?after=POS       the change feed as Server-Sent Events
 *
 * Authorized by a bearer token the server's `authenticate` (or JWT) accepts,
 * for a service (`role: "service"`) that may read the space (and write it, to
 * write). Writes are the server's own writer's (writer.ts), idempotent with an
 * `Idempotency-Key` header. Positions are
 * those of the space's log, the ones clients resume from: a consumer that
 * keeps the last `upTo` (or event id) it handled and asks again from there
 * after any cut gets every change once, in log order.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { canonicalJson, isPlainObject, isSpaceId, materialize, SynclineError, type Change, type Fields, type Json, type ReplicaId, type SpaceId } from '@syncline/core/internal';
import type { Logger } from 'pino';
import type { Authenticate } from './auth.js';
import type { Hub } from './hub.js';
import type { LoggedChange, ServerStorage } from './storage/types.js';
import { WriteRefused, type ServerWriter, type WriteOp } from './writer.js';

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
  /** Stores the API's writes. */
  readonly writer: ServerWriter;
  /** The largest request body taken (bytes: the largest frame a client may send). */
  readonly maxBodyBytes: number;
  /** The most writes in one request (the most changes in one push). */
  readonly maxBatch: number;
  /** This server's region (with peers): changes then carry their origin, and pages an origin vector. */
  readonly region: string | undefined;
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
  /** With regions: the region the change entered through, and its position in that region's log. */
  readonly origin?: string;
  readonly originPos?: number;
}

/** A logged change in the API's JSON form; with `region` (this server's), with its origin. */
export function feedChange(entry: LoggedChange, region?: string): FeedChange {
  const c = entry.change;
  const where = region === undefined ? {} : { origin: entry.origin === '' ? region : entry.origin, originPos: entry.originPos };
  const head = { pos: entry.pos, collection: c.collection, id: c.id, replica: c.replica, seq: c.seq, hlc: c.hlc, op: c.op, ...where };
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

/** The HTTP status of each error code the API answers with. */
const STATUS: Readonly<Record<string, number>> = {
  invalid_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  compacted: 410,
  too_large: 413,
  idempotency_mismatch: 422,
  shutting_down: 503,
  quota_exceeded: 507,
};

/** Handles a request under /api/ (any error is answered with its status and code). */
export async function handleApi(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const match = /^\/api\/v1\/spaces\/([^/]+)\/(records|writes|changes|changes\/stream)(?:\/([^/]+)\/([^/]+))?$/.exec(url.pathname);
  try {
    if (!match || (match[3] !== undefined && match[2] !== 'records')) throw new ApiError(404, 'not_found', `no such endpoint: ${url.pathname} (see docs/openapi.json)`);
    const space = segment(match[1] as string, 'space');
    if (!isSpaceId(space)) throw new ApiError(400, 'invalid_request', `not a space id: ${JSON.stringify(space)}`);
    const endpoint = match[2] as string;
    const one = match[3] !== undefined ? { collection: segment(match[3], 'collection'), id: segment(match[4] as string, 'id') } : undefined;
    const methods = one ? ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE'] : endpoint === 'writes' ? ['POST'] : ['GET', 'HEAD'];
    const method = req.method ?? 'GET';
    if (!methods.includes(method)) {
      res.setHeader('allow', methods.join(', '));
      throw new ApiError(405, 'method_not_allowed', `${method} is not allowed here; use ${methods.filter((m) => m !== 'HEAD').join(', ')}`);
    }
    const writing = method !== 'GET' && method !== 'HEAD';
    await authorize(ctx, req, space as SpaceId, writing);
    if (one && !writing) await record(ctx, space as SpaceId, one.collection, one.id, res);
    else if (one) await writeOne(ctx, req, method, space as SpaceId, one.collection, one.id, res);
    else if (endpoint === 'writes') await writeMany(ctx, req, space as SpaceId, res);
    else if (endpoint === 'records') await records(ctx, url, space as SpaceId, res);
    else if (endpoint === 'changes') await changes(ctx, url, space as SpaceId, req, res);
    else await stream(ctx, url, space as SpaceId, req, res);
  } catch (error) {
    if (error instanceof ApiError) send(res, error.status, { code: error.code, message: error.message, ...error.extra });
    else if (error instanceof WriteRefused) send(res, STATUS[error.code] ?? 400, { code: error.code, message: error.message });
    else {
      ctx.logger.error({ err: error }, 'api error');
      if (!res.headersSent) send(res, 500, { code: 'internal', message: 'internal server error' });
      else res.destroy();
    }
  }
}

/** A path segment, percent-decoded. */
function segment(raw: string, name: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new ApiError(400, 'invalid_request', `the ${name} in the path is not a valid percent-encoding`);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }).end(JSON.stringify(body));
}

/** A service token that may read `space` (and write it, for `write`): 401 without a valid one, 403 when it is not a service's or not for the space. */
async function authorize(ctx: ApiContext, req: IncomingMessage, space: SpaceId, write: boolean): Promise<void> {
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
  const access = grant.access(space);
  if (access === undefined) throw new ApiError(403, 'forbidden', `the token grants no access to space ${space}`);
  if (write && access !== 'write') throw new ApiError(403, 'forbidden', `the token grants read-only access to space ${space}`);
  if (grant.expiresAt !== undefined && grant.expiresAt <= Date.now()) throw new ApiError(401, 'unauthenticated', 'the token has expired');
}

/** GET …/records/{collection}/{id}: one record as replicas see it (404 when it does not exist). */
async function record(ctx: ApiContext, space: SpaceId, collection: string, id: string, res: ServerResponse): Promise<void> {
  const view = materialize(await ctx.storage.record(space, collection, id));
  if (!view.exists) throw new ApiError(404, 'not_found', `no record ${JSON.stringify(id)} in collection ${JSON.stringify(collection)} of space ${space}`);
  const siblings = view.siblings.length > 1 ? { siblings: view.siblings.map((v) => ({ replica: v.replica, seq: v.seq, hlc: v.hlc, value: v.value })) } : {};
  send(res, 200, { space, collection, id, value: view.value, ...siblings });
}

/** The request body as JSON (at most ctx.maxBodyBytes; 413 past it), or undefined when there is none. */
async function readBody(ctx: ApiContext, req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > ctx.maxBodyBytes) throw new ApiError(413, 'too_large', `the body of ${declared} bytes exceeds the limit of ${ctx.maxBodyBytes}`);
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > ctx.maxBodyBytes) throw new ApiError(413, 'too_large', `the body exceeds the limit of ${ctx.maxBodyBytes} bytes`);
    chunks.push(chunk);
  }
  if (bytes === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new ApiError(400, 'invalid_request', 'the body is not JSON');
  }
}

/** `body[name]` as fields (an object), or a 400 naming `where`. */
function fieldsOf(value: unknown, where: string): Fields {
  if (!isPlainObject(value)) throw new ApiError(400, 'invalid_request', `${where} must be an object of fields`);
  return value as Fields;
}

/** One write of a request, checked for shape (storage's checks follow in the writer). */
function writeOp(op: string, collection: string, id: string, body: Record<string, unknown>, where: string): WriteOp {
  if (typeof collection !== 'string' || typeof id !== 'string') throw new ApiError(400, 'invalid_request', `${where}: collection and id must be strings`);
  switch (op) {
    case 'put':
      return { op, collection, id, fields: fieldsOf(body['fields'], `${where}.fields`) };
    case 'patch': {
      const unset = body['unset'] ?? [];
      if (!Array.isArray(unset) || !unset.every((name) => typeof name === 'string')) throw new ApiError(400, 'invalid_request', `${where}.unset must be an array of field names`);
      return { op, collection, id, fields: fieldsOf(body['fields'] ?? {}, `${where}.fields`), unset: unset as string[] };
    }
    case 'delete':
      return { op, collection, id };
    case 'version': {
      const value = body['value'];
      if (value !== null && !isPlainObject(value)) throw new ApiError(400, 'invalid_request', `${where}.value must be an object of fields, or null to delete`);
      return { op, collection, id, value: value as Fields | null };
    }
    default:
      throw new ApiError(400, 'invalid_request', `${where}.op must be put, patch, delete or version, got ${JSON.stringify(op)}`);
  }
}

/** PUT, PATCH or DELETE of one record. */
async function writeOne(ctx: ApiContext, req: IncomingMessage, method: string, space: SpaceId, collection: string, id: string, res: ServerResponse): Promise<void> {
  const body = await readBody(ctx, req);
  if (method === 'DELETE') return write(ctx, req, space, [writeOp('delete', collection, id, {}, 'body')], body ?? null, res);
  if (!isPlainObject(body)) throw new ApiError(400, 'invalid_request', `the body of ${method} must be a JSON object`);
  const has = (name: string): boolean => Object.hasOwn(body, name);
  let op: string;
  if (method === 'PATCH') op = 'patch';
  else if (has('fields') === has('value')) throw new ApiError(400, 'invalid_request', 'the body of PUT holds exactly one of fields (an lww record) and value (a merge version)');
  else op = has('fields') ? 'put' : 'version';
  return write(ctx, req, space, [writeOp(op, collection, id, body, 'body')], body, res);
}

/** POST …/writes: `{ writes: [...] }`, stored together or not at all. */
async function writeMany(ctx: ApiContext, req: IncomingMessage, space: SpaceId, res: ServerResponse): Promise<void> {
  const body = await readBody(ctx, req);
  const list = isPlainObject(body) ? body['writes'] : undefined;
  if (!Array.isArray(list) || list.length === 0) throw new ApiError(400, 'invalid_request', 'the body must be { "writes": [...] } with at least one write');
  if (list.length > ctx.maxBatch) throw new ApiError(413, 'too_large', `${list.length} writes exceed the limit of ${ctx.maxBatch} per request`);
  const ops = list.map((item: unknown, i) => {
    if (!isPlainObject(item)) throw new ApiError(400, 'invalid_request', `writes[${i}] must be an object`);
    const w = item as Record<string, unknown>;
    return writeOp(w['op'] as string, w['collection'] as string, w['id'] as string, w, `writes[${i}]`);
  });
  return write(ctx, req, space, ops, body, res);
}

/** An Idempotency-Key: 1-255 characters of printable ASCII. */
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;

/** Stores `ops` through the writer, idempotently when the request has an Idempotency-Key. */
async function write(ctx: ApiContext, req: IncomingMessage, space: SpaceId, ops: WriteOp[], body: unknown, res: ServerResponse): Promise<void> {
  if (ctx.closing()) throw new ApiError(503, 'shutting_down', 'the server is shutting down; send the request again (with its Idempotency-Key) to another instance or later');
  const header = req.headers['idempotency-key'];
  let key;
  if (header !== undefined) {
    if (typeof header !== 'string' || !IDEMPOTENCY_KEY.test(header)) throw new ApiError(400, 'invalid_request', 'Idempotency-Key must be 1-255 printable ASCII characters');
    // What identifies the request: a retry must be the same request.
    const fingerprint = createHash('sha256').update(`${req.method ?? ''} ${req.url ?? ''} ${canonicalJson(body as Json)}`).digest('base64url');
    key = { key: header, fingerprint };
  }
  const { result, replayed } = await ctx.writer.write(space, ops, key);
  if (replayed) res.setHeader('idempotent-replayed', 'true');
  send(res, 200, result);
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
 * is the cursor of the next page (absent on the last). With `collection`, that
 * collection's only, and with `from` / `to` the ids from `from` (inclusive) to
 * `to` (exclusive), in the order of their UTF-8 bytes. `head` is the space's
 * log position read before the page: every change up to it is in these
 * records, so a mirror that reads every page and then follows the change feed
 * from the first page's `head` misses nothing.
 */
async function records(ctx: ApiContext, url: URL, space: SpaceId, res: ServerResponse): Promise<void> {
  const limit = intParam(url, 'limit', DEFAULT_LIMIT, 1, API_MAX_LIMIT);
  const cursor = url.searchParams.get('after');
  const collection = url.searchParams.get('collection') ?? undefined;
  const from = url.searchParams.get('from') ?? undefined;
  const to = url.searchParams.get('to') ?? undefined;
  if (collection === undefined && (from !== undefined || to !== undefined)) throw new ApiError(400, 'invalid_request', 'from and to are ids of one collection: give collection too');
  let after: readonly [string, string] | undefined;
  if (cursor !== null && cursor !== '') {
    try {
      const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
      if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[0] !== 'string' || typeof parsed[1] !== 'string') throw new Error('shape');
      after = [parsed[0], parsed[1]];
    } catch {
      throw new ApiError(400, 'invalid_request', 'after is not a cursor this endpoint gave (its `next`)');
    }
  } else if (collection !== undefined) after = [collection, from ?? ''];
  const head = await ctx.storage.head(space);
  // `from` itself on the first page (the page after it starts past it).
  const first = !cursor && collection !== undefined && from !== undefined ? await ctx.storage.record(space, collection, from) : undefined;
  const page = [...(first ? [{ collection: collection as string, id: from as string, state: first }] : []), ...(await ctx.storage.snapshotPage(space, after, first ? limit - 1 : limit))];
  const toBytes = to === undefined ? undefined : Buffer.from(to, 'utf8');
  const inRange = (r: { collection: string; id: string }): boolean =>
    (collection === undefined || r.collection === collection) && (toBytes === undefined || Buffer.compare(Buffer.from(r.id, 'utf8'), toBytes) < 0);
  const end = page.findIndex((r) => !inRange(r));
  const within = end < 0 ? page : page.slice(0, end);
  const out = [];
  for (const record of within) {
    const view = materialize(record.state);
    if (view.exists) out.push({ collection: record.collection, id: record.id, value: view.value });
  }
  const last = within[within.length - 1];
  const more = end < 0 && page.length === limit;
  const next = more && last ? Buffer.from(JSON.stringify([last.collection, last.id])).toString('base64url') : undefined;
  send(res, 200, { space, head, records: out, ...(next !== undefined ? { next } : {}) });
}

/** Changes after `after` (one page), without those `held` covers, waiting up to `waitMs` for one when there is none. */
async function readChanges(
  ctx: ApiContext,
  space: SpaceId,
  after: number,
  limit: number,
  waitMs: number,
  gone: () => boolean,
  held?: ReadonlyMap<string, number>,
): Promise<{ changes: FeedChange[]; upTo: number }> {
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
      const fresh = held ? page.filter((e) => (held.get(e.origin) ?? 0) < e.originPos) : page;
      if (page.length > 0 || upTo > after || !advance || Date.now() >= deadline || gone() || ctx.closing()) return { changes: fresh.map((e) => feedChange(e, ctx.region)), upTo };
      await advance.until(deadline - Date.now());
    } finally {
      advance?.stop();
    }
  }
}

/**
 * An origin vector as the API writes it: `region:pos` per region, comma-separated,
 * in name order (`''`, this region's own origin, under its name).
 */
function formatOrigins(vector: ReadonlyMap<string, number>, region: string): string {
  return [...vector]
    .map(([origin, pos]) => [origin === '' ? region : origin, pos] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, pos]) => `${name}:${pos}`)
    .join(',');
}

/** formatOrigins' text as a vector keyed by origin ('' for this region); a 400 when it is not one. */
function parseOrigins(text: string, region: string): Map<string, number> {
  const vector = new Map<string, number>();
  for (const part of text === '' ? [] : text.split(',')) {
    const m = /^([A-Za-z0-9._-]{1,64}):(\d{1,16})$/.exec(part);
    const pos = Number(m?.[2]);
    if (!m || !Number.isSafeInteger(pos)) throw new ApiError(400, 'invalid_request', `origins must be region:position pairs separated by commas (an \`origins\` the feed gave), got ${JSON.stringify(text)}`);
    const origin = m[1] === region ? '' : (m[1] as string);
    vector.set(origin, Math.max(vector.get(origin) ?? 0, pos));
  }
  return vector;
}

/** `a` with `b`'s larger entries. */
function joinVectors(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number> | undefined): Map<string, number> {
  const out = new Map(a);
  for (const [origin, pos] of b ?? []) out.set(origin, Math.max(out.get(origin) ?? 0, pos));
  return out;
}

/**
 * Where a reader that holds `held` (an origin vector, perhaps from another
 * region) resumes in this region's log: a 410 `compacted` when an entry it
 * lacks is gone.
 */
async function resumeFrom(ctx: ApiContext, space: SpaceId, held: ReadonlyMap<string, number>): Promise<number> {
  const resumed = await ctx.storage.resumeAfter(space, held);
  if (resumed === undefined) {
    const compactedTo = await ctx.storage.horizon(space);
    throw new ApiError(410, 'compacted', `the log of ${space} no longer holds every change after these origins; read the records (GET …/records) and follow from their head`, { compactedTo });
  }
  return resumed;
}

/** The `after` and `origins` query parameters: where to read from, and the vector held with it (regions only). */
async function startOf(ctx: ApiContext, url: URL, space: SpaceId, lastEventId?: string): Promise<{ after: number; held: Map<string, number> | undefined }> {
  const origins = lastEventId?.includes(':') ? lastEventId : url.searchParams.get('origins');
  if (origins === null || origins === undefined) {
    const after = lastEventId !== undefined ? Number(lastEventId) : intParam(url, 'after', 0, 0, Number.MAX_SAFE_INTEGER);
    if (!Number.isSafeInteger(after) || after < 0) throw new ApiError(400, 'invalid_request', `Last-Event-ID must be an event id the stream gave, got ${JSON.stringify(lastEventId)}`);
    return { after, held: undefined };
  }
  if (ctx.region === undefined) throw new ApiError(400, 'invalid_request', 'origins are for servers with regions (--region); read from a position with after');
  if (lastEventId === undefined && url.searchParams.has('after')) throw new ApiError(400, 'invalid_request', 'give after or origins, not both');
  const held = parseOrigins(origins, ctx.region);
  return { after: await resumeFrom(ctx, space, held), held };
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
  const limit = intParam(url, 'limit', DEFAULT_LIMIT, 1, API_MAX_LIMIT);
  const waitMs = intParam(url, 'wait', 0, 0, API_MAX_WAIT_S) * 1000;
  const { after, held } = await startOf(ctx, url, space);
  let gone = false;
  res.once('close', () => (gone = true));
  const page = await readChanges(ctx, space, after, limit, waitMs, () => gone, held);
  // With regions: what the reader holds after this page, to resume from in any region.
  const origins = ctx.region === undefined ? {} : { origins: formatOrigins(joinVectors(await ctx.storage.originVector(space, page.upTo), held), ctx.region) };
  if (!gone) send(res, 200, { space, changes: page.changes, upTo: page.upTo, ...origins });
}

/**
 * GET …/changes/stream: the change feed as Server-Sent Events, from `after`
 * (or `origins`) or the `Last-Event-ID` a reconnecting EventSource sends. Each
 * change is a `change` event whose id is its position (with regions: the
 * origin vector after it, so that a reconnect to another region resumes too);
 * a `position` event says the log moved past positions with no change of this
 * feed (a merged peer state, or changes the reader held). A comment every 15 s
 * keeps idle streams open.
 */
async function stream(ctx: ApiContext, url: URL, space: SpaceId, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const lastEventId = req.headers['last-event-id'];
  const start = await startOf(ctx, url, space, typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : undefined);
  let { after } = start;
  let gone = false;
  res.once('close', () => (gone = true));
  // A compacted position is refused before the stream starts (a 410, not an event).
  await notCompacted(ctx, space, after);
  const region = ctx.region;
  // With regions, what the reader holds: each event's id.
  let held = region === undefined ? undefined : joinVectors(await ctx.storage.originVector(space, after), start.held);
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
        page = await readChanges(ctx, space, after, DEFAULT_LIMIT, HEARTBEAT_MS, () => gone, held);
      } catch (error) {
        if (error instanceof ApiError) {
          await write(`event: error\ndata: ${JSON.stringify({ code: error.code, message: error.message, ...error.extra })}\n\n`);
          break;
        }
        throw error;
      }
      for (const change of page.changes) {
        let id = String(change.pos);
        if (held && region !== undefined) {
          const origin = change.origin === region ? '' : (change.origin as string);
          held.set(origin, Math.max(held.get(origin) ?? 0, change.originPos as number));
          id = formatOrigins(held, region);
        }
        await write(`id: ${id}\nevent: change\ndata: ${JSON.stringify(change)}\n\n`);
      }
      const last = page.changes[page.changes.length - 1]?.pos ?? after;
      if (page.upTo > last) {
        let id = String(page.upTo);
        if (held && region !== undefined) {
          held = joinVectors(await ctx.storage.originVector(space, page.upTo), held);
          id = formatOrigins(held, region);
        }
        await write(`id: ${id}\nevent: position\ndata: ${JSON.stringify({ upTo: page.upTo })}\n\n`);
      }
      after = page.upTo;
    }
  } finally {
    clearInterval(heartbeat);
    res.end();
  }
}
