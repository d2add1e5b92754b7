/**
 * syncline-server: the sync server on the command line.
 *
 *   syncline-server [--port 8787] [--host 127.0.0.1] [--db ./data/syncline.db | --postgres URL [--postgres-schema S]]
 *                   [--jwt-secret S | --jwt-public-key FILE | --jwks-url URL] [--jwt-issuer ISS] [--jwt-audience AUD]
 *                   [--jwt-algorithms A,B] [--jwt-allow-no-expiry]
 *                   [--static DIR] [--allow-origin ORIGIN ...] [--keep-log N] [--max-frame-bytes N] [--max-batch N]
 *                   [--max-connections N] [--messages-per-second N] [--max-clock-drift MS] [--log-level info]
 *                   [--region NAME [--peer URL ...] [--peer-secret S | --peer-secret-file FILE]]
 *                   [--gc-interval MS] [--retire-after MS]
 *   syncline-server retire REPLICA... [--db PATH | --postgres URL [--postgres-schema S]]
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { LINK_PROTOCOL_VERSION, PROTOCOL_VERSION, isReplicaId, isSpaceId, type ReplicaId } from '@syncline/core/internal';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { ConfigError, envName, intOption, readOptions, usageOf, type OptionSpec, type ReadOptions } from './config.js';
import { announcedLimits, checkRegionOptions, type Limits } from './options.js';
import { createSyncServer } from './server.js';
import { postgresStorage } from './storage/postgres-storage.js';
import { formatInspection, inspectStorage, type Inspection } from './inspect.js';
import { compactSpaces } from './storage/compact.js';
import { backupSqlite, sqliteStorage } from './storage/sqlite-storage.js';
import type { ServerStorage } from './storage/types.js';

/** Every option of `syncline-server` (config.ts): the usage text, the parser, and the README's table. */
export const SERVER_OPTIONS: readonly OptionSpec[] = [
  { name: 'port', type: 'string', value: 'N', help: 'port to listen on (default 8787; 0 = any free port)' },
  { name: 'host', type: 'string', value: 'H', help: 'address to bind (default 127.0.0.1)' },
  { name: 'admin-port', type: 'string', value: 'N', help: 'serve /metrics (and /healthz) on this port instead of --port\n(default: none, /metrics on --port)' },
  { name: 'admin-host', type: 'string', value: 'H', help: 'address of the admin listener (default 127.0.0.1)' },
  { name: 'db', type: 'string', value: 'PATH', help: 'SQLite database file (default ./data/syncline.db)' },
  { name: 'postgres', type: 'string', value: 'URL', help: 'PostgreSQL instead of SQLite (postgres://user@host:5432/db);\nseveral servers may share it (password: PGPASSWORD)' },
  { name: 'postgres-schema', type: 'string', value: 'S', help: 'schema for the tables (default syncline)' },
  { name: 'jwt-secret', type: 'string', value: 'S', help: 'require JWTs signed with this HMAC secret' },
  { name: 'jwt-secret-file', type: 'string', value: 'FILE', help: 'the same, read from a file (trailing newline dropped)' },
  { name: 'jwt-public-key', type: 'string', value: 'FILE', help: 'require JWTs signed with this RSA public key (PEM)' },
  { name: 'jwks-url', type: 'string', value: 'URL', help: 'require JWTs signed with a key from this JWKS' },
  { name: 'jwt-issuer', type: 'string', value: 'ISS', help: 'require this issuer (iss) in JWTs' },
  { name: 'jwt-audience', type: 'string', value: 'AUD', help: 'require this audience (aud) in JWTs' },
  { name: 'jwt-algorithms', type: 'string', value: 'A,B', help: 'accepted algorithms (default: those of the key kind)' },
  { name: 'jwt-allow-no-expiry', type: 'boolean', help: 'accept JWTs without exp (never expire; refused by default)' },
  { name: 'static', type: 'string', value: 'DIR', help: 'serve this folder at / (the calendar build)' },
  { name: 'static-source-maps', type: 'boolean', help: "also serve the folder's source maps (.map; not served by default)" },
  { name: 'allow-origin', type: 'list', value: 'ORIGIN', help: 'a browser origin allowed to sync (repeat for more; * for any);\ndefault: any with auth on, this server\'s own host with auth off' },
  { name: 'trust-proxy', type: 'boolean', help: 'take client addresses from X-Forwarded-For (behind a reverse proxy\nthat sets it; never when clients reach this server directly)' },
  { name: 'keep-log', type: 'string', value: 'N', help: "compact each space's log to its last N changes" },
  { name: 'max-frame-bytes', type: 'string', value: 'N', help: 'largest frame, both ways (default 1048576; at least 589824)' },
  { name: 'max-batch', type: 'string', value: 'N', help: 'most changes per push (default 1000; at least 1)' },
  { name: 'max-connections', type: 'string', value: 'N', help: 'most open connections (default 10000)' },
  { name: 'messages-per-second', type: 'string', value: 'N', help: 'per connection (default 200; at least 5)' },
  { name: 'max-clock-drift', type: 'string', value: 'MS', help: "how far ahead of this server's clock a change may be\nstamped (default 300000; at least 60000)" },
  { name: 'log-level', type: 'string', value: 'L', help: 'fatal, error, warn, info, debug, trace or silent (default info)' },
  { name: 'region', type: 'string', value: 'NAME', help: "this deployment's region name: serves region links to its peers" },
  { name: 'peer', type: 'list', value: 'URL', help: 'a peer region to follow (ws://host:port; repeat for each peer)' },
  { name: 'peer-secret', type: 'string', value: 'S', help: "the peer credential links must present and this server's links send;\nrequired for links when JWT auth is on" },
  { name: 'peer-secret-file', type: 'string', value: 'FILE', help: 'the same, read from a file (trailing newline dropped)' },
  { name: 'gc-interval', type: 'string', value: 'MS', help: 'how often stability horizons move and deleted records are\nforgotten (default 60000; 0 = never)' },
  { name: 'retire-after', type: 'string', value: 'MS', help: 'retire replicas not seen for this long (default 7776000000,\n90 days; 0 = never): they stop holding horizons back' },
];

const RETIRE_USAGE = `usage: syncline-server retire REPLICA... [--db PATH | --postgres URL [--postgres-schema S]]
  Retires replicas for good in the database a server uses (running or not): they stop
  holding stability horizons back, and their next hello or push is refused with
  replica_retired (the replica starts again under a new id). The database options may also
  come from SYNCLINE_DB, SYNCLINE_POSTGRES and SYNCLINE_POSTGRES_SCHEMA.`;

const BACKUP_USAGE = `usage: syncline-server backup --to FILE [--db PATH]
  Copies a SQLite database (default ./data/syncline.db) to FILE while a server may be
  using it, with SQLite's online backup: FILE is the database as of one moment, whole,
  and a server started on it serves that state. FILE must not exist. For PostgreSQL use
  pg_dump (pg_dump --schema syncline URL > backup.sql) or your provider's snapshots.
  --db may also come from SYNCLINE_DB.`;

const COMPACT_USAGE = `usage: syncline-server compact --keep-log N [--db PATH | --postgres URL [--postgres-schema S]]
  Compacts each space's log to its last N changes now (what --keep-log does on a timer),
  never past what a region following this one has stored, and prints what was removed.
  A replica whose position is older gets a snapshot. The database options may also come
  from SYNCLINE_DB, SYNCLINE_POSTGRES, SYNCLINE_POSTGRES_SCHEMA and SYNCLINE_KEEP_LOG.`;

const INSPECT_USAGE = `usage: syncline-server inspect [--admin URL | --db PATH | --postgres URL [--postgres-schema S]] [--json]
  Prints per space its head, compaction and stability horizons, records, tombstones, bytes
  and writers (seq, last seen, retired); with --admin (a running server's admin listener,
  such as http://127.0.0.1:9090, see --admin-port) also its connections and region links.
  --json prints the inspection as JSON. The database options may also come from
  SYNCLINE_DB, SYNCLINE_POSTGRES and SYNCLINE_POSTGRES_SCHEMA.`;

const TOKEN_USAGE = `usage: syncline-server token --sub NAME --space SPACE[:read|:write] ... [--expires-in 1h] [--service]
                             [--jwt-secret S | --jwt-secret-file FILE] [--jwt-issuer ISS] [--jwt-audience AUD]
  Prints a JWT (HS256) that a server started with the same secret accepts: for subject NAME,
  each space writable unless :read is given (* for every space), expiring after --expires-in
  (30s, 15m, 12h, 7d; default 1h). --service makes it a service's token ("role": "service"),
  for the backend API. The secret, issuer and audience may also come from
  SYNCLINE_JWT_SECRET, SYNCLINE_JWT_SECRET_FILE, SYNCLINE_JWT_ISSUER, SYNCLINE_JWT_AUDIENCE.`;

const USAGE = `usage: syncline-server [options]
Each option may also come from the environment variable named under it; a
command-line value wins. Secrets may come from files (--jwt-secret-file,
--peer-secret-file).
${usageOf(SERVER_OPTIONS)}
  --version                print the version and exit
  --help                   print this and exit

${RETIRE_USAGE}

${TOKEN_USAGE}

${BACKUP_USAGE}

${COMPACT_USAGE}

${INSPECT_USAGE}`;

/** pino's levels, and silent. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The subcommands: each with its usage (its --help) and what it runs. */
const SUBCOMMANDS: Record<string, { readonly usage: string; readonly run: (argv: string[], env: NodeJS.ProcessEnv) => Promise<void> }> = {
  retire: { usage: RETIRE_USAGE, run: retire },
  token: { usage: TOKEN_USAGE, run: token },
  backup: { usage: BACKUP_USAGE, run: backup },
  compact: { usage: COMPACT_USAGE, run: compact },
  inspect: { usage: INSPECT_USAGE, run: inspectCommand },
};

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const sub = SUBCOMMANDS[argv[0] ?? ''];
  if (sub) {
    if (argv.includes('--help')) process.stdout.write(`${sub.usage}\n`);
    else await sub.run(argv.slice(1), env);
    return;
  }
  if (argv.includes('--help')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (argv.includes('--version')) {
    process.stdout.write(`syncline-server ${version()} (client protocol ${PROTOCOL_VERSION}, link protocol ${LINK_PROTOCOL_VERSION})\n`);
    return;
  }
  const read = readOptions(argv, env, SERVER_OPTIONS);
  const values = read.values as Record<string, string | undefined> & { 'jwt-allow-no-expiry'?: boolean; 'allow-origin'?: string[]; peer?: string[] };
  const from = read.source;
  const int = (name: string): number | undefined => intOption(read, name);
  // Everything is checked before anything is opened, bound or created.
  const limits: Partial<Limits> = {
    ...(int('max-frame-bytes') !== undefined ? { maxFrameBytes: int('max-frame-bytes') as number } : {}),
    ...(int('max-batch') !== undefined ? { maxBatch: int('max-batch') as number } : {}),
    ...(int('max-connections') !== undefined ? { maxConnections: int('max-connections') as number } : {}),
    ...(int('messages-per-second') !== undefined ? { messagesPerSecond: int('messages-per-second') as number } : {}),
  };
  exclusive(read, 'jwt-secret', 'jwt-secret-file', 'jwt-public-key', 'jwks-url');
  const secret = secretOption(read, 'jwt-secret');
  const key =
    secret !== undefined
      ? { secret }
      : values['jwt-public-key'] !== undefined
        ? { publicKey: readText(values['jwt-public-key'], from('jwt-public-key')) }
        : values['jwks-url'] !== undefined
          ? { jwksUrl: values['jwks-url'] }
          : undefined;
  const claims = {
    ...(values['jwt-issuer'] !== undefined ? { issuer: values['jwt-issuer'] } : {}),
    ...(values['jwt-audience'] !== undefined ? { audience: values['jwt-audience'] } : {}),
    ...(values['jwt-algorithms'] !== undefined ? { algorithms: values['jwt-algorithms'].split(',').map((a) => a.trim()).filter(Boolean) } : {}),
    ...(values['jwt-allow-no-expiry'] ? { allowNoExpiry: true } : {}),
  };
  if (!key && Object.keys(claims).length > 0) throw new ConfigError('--jwt-issuer, --jwt-audience, --jwt-algorithms and --jwt-allow-no-expiry need --jwt-secret, --jwt-secret-file, --jwt-public-key or --jwks-url');
  const jwt = key ? { ...key, ...claims } : undefined;
  const level = values['log-level'] ?? 'info';
  if (!LOG_LEVELS.includes(level)) throw new ConfigError(`${from('log-level')} must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
  const keepLog = int('keep-log');
  const gc = {
    ...(int('gc-interval') !== undefined ? { intervalMs: int('gc-interval') as number } : {}),
    ...(int('retire-after') !== undefined ? { retireAfterMs: int('retire-after') as number } : {}),
  };
  const maxClockDrift = int('max-clock-drift');
  // Limits below the protocol's promise would wedge honest clients.
  try {
    announcedLimits(limits, maxClockDrift);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const peerSecret = secretOption(read, 'peer-secret');
  const region = { ...(values['region'] !== undefined ? { region: values['region'] } : {}), ...(values.peer ? { peers: values.peer } : {}), ...(peerSecret !== undefined ? { peerSecret } : {}) };
  try {
    checkRegionOptions(region);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const sqlitePath = databasePath(read, { create: true });
  const port = int('port') ?? 8787;
  if (port > 65535) throw new ConfigError(`${from('port')} must be at most 65535, got ${port}`);
  const host = values['host'] ?? '127.0.0.1';
  if (values['static'] !== undefined && !(existsSync(values['static']) && statSync(values['static']).isDirectory())) throw new ConfigError(`${from('static')} ${values['static']} is not a folder`);
  const adminPort = int('admin-port');
  if (adminPort !== undefined && adminPort > 65535) throw new ConfigError(`${from('admin-port')} must be at most 65535, got ${adminPort}`);
  if (values['admin-host'] !== undefined && adminPort === undefined) throw new ConfigError(`${from('admin-host')} needs --admin-port`);
  const adminHost = values['admin-host'] ?? '127.0.0.1';
  // A port in use fails here, before a database is created or a warning printed.
  await portAvailable(port, host, from('port'), '--host');
  if (adminPort !== undefined) await portAvailable(adminPort, adminHost, from('admin-port'), '--admin-host');
  const logger = pino({ level });
  const storage = await openStorage(read, sqlitePath, (error) => logger.error({ err: error }, 'postgres storage error'));
  const server = createSyncServer({
    port,
    host,
    ...(adminPort !== undefined ? { adminPort, adminHost } : {}),
    storage,
    logger,
    limits,
    ...(jwt ? { jwt } : {}),
    ...(values['static'] ? { staticDir: values['static'] } : {}),
    ...(read.values['static-source-maps'] ? { staticSourceMaps: true } : {}),
    ...(read.values['trust-proxy'] ? { trustProxy: true } : {}),
    ...(values['allow-origin'] ? { allowedOrigins: values['allow-origin'].includes('*') ? ('*' as const) : values['allow-origin'] } : {}),
    ...(keepLog !== undefined ? { compaction: { keepLast: keepLog } } : {}),
    ...(maxClockDrift !== undefined ? { maxClockDrift } : {}),
    ...(Object.keys(gc).length > 0 ? { gc } : {}),
    ...region,
  });
  await server.listen();
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

const TOKEN_OPTIONS: readonly OptionSpec[] = [
  { name: 'sub', type: 'string', help: '' },
  { name: 'space', type: 'list', help: '' },
  { name: 'expires-in', type: 'string', help: '' },
  { name: 'service', type: 'boolean', help: '' },
  ...SERVER_OPTIONS.filter((o) => ['jwt-secret', 'jwt-secret-file', 'jwt-issuer', 'jwt-audience'].includes(o.name)),
];

/** `syncline-server token`: mints a JWT for development and scripts (TOKEN_USAGE). */
async function token(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  // Only the secret, issuer and audience come from the environment (a server's own variables).
  const read = readOptions(argv, envFor(env, TOKEN_OPTIONS.filter((o) => o.name.startsWith('jwt-'))), TOKEN_OPTIONS);
  const values = read.values as Record<string, string | undefined> & { space?: string[] };
  const secret = secretOption(read, 'jwt-secret');
  if (secret === undefined) throw new ConfigError('token needs the server\'s secret: --jwt-secret, --jwt-secret-file, SYNCLINE_JWT_SECRET or SYNCLINE_JWT_SECRET_FILE');
  const subject = values['sub'];
  if (subject === undefined || subject === '') throw new ConfigError('token needs --sub (who the token is for)');
  if (!values.space || values.space.length === 0) throw new ConfigError('token needs at least one --space (SPACE, SPACE:read or SPACE:write)');
  const spaces: Record<string, 'read' | 'write'> = {};
  for (const entry of values.space) {
    const match = /^(.+?)(?::(read|write))?$/.exec(entry);
    const space = match?.[1] ?? '';
    if (space !== '*' && !isSpaceId(space)) throw new ConfigError(`--space ${JSON.stringify(entry)}: not a space id (1 to 128 printable ASCII characters, no spaces; or *), optionally followed by :read or :write`);
    spaces[space] = (match?.[2] as 'read' | 'write' | undefined) ?? 'write';
  }
  const expiresIn = durationMs(values['expires-in'] ?? '1h', read.source('expires-in'));
  const nowSeconds = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ spaces, ...(read.values['service'] ? { role: 'service' } : {}) }).setProtectedHeader({ alg: 'HS256' }).setSubject(subject).setIssuedAt(nowSeconds).setExpirationTime(nowSeconds + Math.ceil(expiresIn / 1000));
  if (values['jwt-issuer'] !== undefined) jwt = jwt.setIssuer(values['jwt-issuer']);
  if (values['jwt-audience'] !== undefined) jwt = jwt.setAudience(values['jwt-audience']);
  process.stdout.write(`${await jwt.sign(new TextEncoder().encode(secret))}\n`);
}

const DATABASE_OPTIONS = SERVER_OPTIONS.filter((o) => ['db', 'postgres', 'postgres-schema'].includes(o.name));

/** The environment a subcommand reads: only the variables of its own options (a server's). */
function envFor(env: NodeJS.ProcessEnv, specs: readonly OptionSpec[]): NodeJS.ProcessEnv {
  const names = new Set(specs.map((s) => envName(s.name)));
  return Object.fromEntries(Object.entries(env).filter(([k]) => names.has(k)));
}

/** `syncline-server backup`: SQLite's online backup of a server's database (BACKUP_USAGE). */
async function backup(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const specs: OptionSpec[] = [{ name: 'to', type: 'string', help: '' }, ...DATABASE_OPTIONS];
  const read = readOptions(argv, envFor(env, specs.filter((s) => s.name === 'db')), specs);
  const values = read.values as Record<string, string | undefined>;
  if (values['postgres'] !== undefined) throw new ConfigError('backup copies SQLite databases; for PostgreSQL use pg_dump (pg_dump --schema syncline URL > backup.sql) or your provider\'s snapshots');
  const to = values['to'];
  if (to === undefined || to === '') throw new ConfigError('backup needs --to FILE (where the copy goes)');
  const from = databasePath(read, { create: false }) as string;
  if (existsSync(to)) throw new ConfigError(`--to ${to} exists; give a new file (a backup never overwrites)`);
  const { pages, bytes } = await backupSqlite(from, to);
  process.stdout.write(`backed up ${from} to ${to}: ${pages} pages, ${bytes} bytes\n`);
}

/** `syncline-server compact`: log compaction now (COMPACT_USAGE). */
async function compact(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const specs: OptionSpec[] = [...SERVER_OPTIONS.filter((o) => o.name === 'keep-log'), ...DATABASE_OPTIONS];
  const read = readOptions(argv, envFor(env, specs), specs);
  const keep = intOption(read, 'keep-log');
  if (keep === undefined) throw new ConfigError('compact needs --keep-log N (how many of each space\'s latest changes to keep)');
  const storage = await openStorage(read, databasePath(read, { create: false }));
  try {
    const removed = await compactSpaces(storage, keep);
    const total = [...removed.values()].reduce((a, b) => a + b, 0);
    process.stdout.write(`compacted: ${total} log entries removed${removed.size > 0 ? ` (${[...removed].map(([space, n]) => `${space}: ${n}`).join(', ')})` : ''}\n`);
  } finally {
    await storage.close();
  }
}

/** `syncline-server inspect` (INSPECT_USAGE). */
async function inspectCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const specs: OptionSpec[] = [{ name: 'admin', type: 'string', help: '' }, { name: 'json', type: 'boolean', help: '' }, ...DATABASE_OPTIONS];
  // Asking a running server: the database variables of the environment are not for it.
  const viaAdmin = argv.some((arg) => arg === '--admin' || arg.startsWith('--admin='));
  const read = readOptions(argv, viaAdmin ? {} : envFor(env, DATABASE_OPTIONS), specs);
  const admin = read.values['admin'] as string | undefined;
  let inspection: Inspection;
  if (admin !== undefined) {
    if (read.values['db'] !== undefined || read.values['postgres'] !== undefined) throw new ConfigError('--admin and --db / --postgres exclude each other');
    let url: URL;
    try {
      url = new URL('/inspect', admin);
    } catch {
      throw new ConfigError(`--admin ${admin} is not a URL (such as http://127.0.0.1:9090)`);
    }
    const response = await fetch(url).catch((error: unknown) => {
      throw new Error(`cannot reach ${url.href}: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`);
    });
    if (!response.ok) throw new Error(`${url.href}: HTTP ${response.status} (is it the admin listener, --admin-port?)`);
    inspection = (await response.json()) as Inspection;
  } else {
    const storage = await openStorage(read, databasePath(read, { create: false }));
    try {
      inspection = { region: undefined, ...(await inspectStorage(storage)) };
    } finally {
      await storage.close();
    }
  }
  process.stdout.write(read.values['json'] ? `${JSON.stringify(inspection, null, 2)}\n` : formatInspection(inspection, Date.now()));
}

/**
 * The SQLite file `--db` names (default ./data/syncline.db), or undefined with
 * `--postgres`; ConfigError for both, `--postgres-schema` without `--postgres`,
 * a folder, or (unless `create`) a file that does not exist: a subcommand
 * never creates a database.
 */
function databasePath(read: ReadOptions, { create }: { readonly create: boolean }): string | undefined {
  exclusive(read, 'db', 'postgres');
  if (read.values['postgres-schema'] !== undefined && read.values['postgres'] === undefined) throw new ConfigError(`${read.source('postgres-schema')} needs --postgres`);
  if (read.values['postgres'] !== undefined) return undefined;
  const path = (read.values['db'] as string | undefined) ?? './data/syncline.db';
  if (existsSync(path) && statSync(path).isDirectory()) throw new ConfigError(`${read.source('db')} ${path} is a folder; give the database file's path, such as ${join(path, 'syncline.db')}`);
  if (!create && !existsSync(path)) throw new ConfigError(`${read.source('db')} ${path}: no such database`);
  return path;
}

/** The storage of `sqlitePath` (databasePath), or of `--postgres`, which must answer now (not at the first push). */
async function openStorage(read: ReadOptions, sqlitePath: string | undefined, onError: (error: unknown) => void = () => undefined): Promise<ServerStorage> {
  if (sqlitePath !== undefined) return sqliteStorage({ path: sqlitePath });
  const url = read.values['postgres'] as string;
  const schema = read.values['postgres-schema'] as string | undefined;
  const pg = postgresStorage({ connectionString: url, ...(schema !== undefined ? { schema } : {}), onError });
  // Unreachable database or a schema from a newer server.
  await pg.ready().catch(async (error: unknown) => {
    await pg.close();
    const e = error as Error & { code?: string };
    throw new Error(`PostgreSQL at ${redact(url)}: ${e.message || e.code || String(error)}`);
  });
  return pg;
}

/** ConfigError when more than one of `names` was given. */
function exclusive(read: ReadOptions, ...names: string[]): void {
  const given = names.filter((n) => read.values[n] !== undefined);
  if (given.length > 1) throw new ConfigError(`${given.map(read.source).join(' and ')} exclude each other`);
}

/**
 * A secret from option `name` or from the file `name-file` names (one of them;
 * its trailing newline dropped); undefined when neither is given, a
 * ConfigError when both are, or when it is empty.
 */
function secretOption(read: ReadOptions, name: string): string | undefined {
  exclusive(read, name, `${name}-file`);
  const file = read.values[`${name}-file`] as string | undefined;
  const secret = file !== undefined ? readText(file, read.source(`${name}-file`)).replace(/\r?\n$/, '') : (read.values[name] as string | undefined);
  if (secret === '') throw new ConfigError(`${read.source(file !== undefined ? `${name}-file` : name)} is empty`);
  return secret;
}

/** `30s`, `15m`, `12h`, `7d` (or plain milliseconds) in ms; a ConfigError naming the option otherwise. */
function durationMs(text: string, option: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(match?.[2] ?? 'ms') as 'ms'];
  const ms = match ? Number(match[1]) * unit : NaN;
  if (!Number.isSafeInteger(ms) || ms < 1_000) throw new ConfigError(`${option} must be a duration of at least 1s such as 30s, 15m, 12h or 7d, got ${JSON.stringify(text)}`);
  return ms;
}

/** This package's version (its package.json, next to dist/). */
function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** A file's text, or a ConfigError naming the option and the path. */
function readText(path: string, option: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new ConfigError(`${option} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder' : code === 'EACCES' ? 'not readable' : (error as Error).message}`);
  }
}

/** Resolves when `port` on `host` can be bound (0 always can); a ConfigError naming the option otherwise. */
function portAvailable(port: number, host: string, option: string, hostOption: string): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', (error: Error & { code?: string }) => {
      reject(
        new ConfigError(
          error.code === 'EADDRINUSE'
            ? `port ${port} on ${host} is in use (${option})`
            : error.code === 'EACCES'
              ? `port ${port} on ${host} needs privileges this process lacks (${option})`
              : error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND'
                ? `${host} is not an address of this machine (${hostOption})`
                : `cannot listen on ${host}:${port}: ${error.message}`,
        ),
      );
    });
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

/** `syncline-server retire REPLICA...`: retires replicas in a server's database (RETIRE_USAGE). */
async function retire(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const read = readOptions(argv, envFor(env, DATABASE_OPTIONS), DATABASE_OPTIONS, true);
  const ids = read.positionals;
  if (ids.length === 0) throw new ConfigError('retire needs the ids of the replicas to retire');
  const bad = ids.find((id) => !isReplicaId(id));
  if (bad !== undefined) throw new ConfigError(`not a replica id: ${JSON.stringify(bad)} (1-64 of A-Z a-z 0-9 _ -)`);
  const storage = await openStorage(read, databasePath(read, { create: false }));
  try {
    const retired = await storage.retire(ids as ReplicaId[], Date.now());
    const already = ids.filter((id) => !retired.includes(id as ReplicaId));
    process.stdout.write(`retired: ${retired.length > 0 ? retired.join(' ') : '(none)'}${already.length > 0 ? `; already retired: ${already.join(' ')}` : ''}\n`);
  } finally {
    await storage.close();
  }
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(the --postgres URL)';
  }
}
