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
import { parseArgs } from 'node:util';
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

usage: syncline-server retire REPLICA... [--db PATH | --postgres URL [--postgres-schema S]]
  Retires replicas for good in the database a server uses (running or not): they stop
  holding stability horizons back, and their next hello or push is refused with
  replica_retired (the replica starts again under a new id).

${TOKEN_USAGE}

${BACKUP_USAGE}

${COMPACT_USAGE}

${INSPECT_USAGE}`;



/** pino's levels, and silent. */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (argv[0] === 'retire') return retire(argv.slice(1));
  if (argv[0] === 'token') return token(argv.slice(1), env);
  if (argv[0] === 'backup') return backup(argv.slice(1), env);
  if (argv[0] === 'compact') return compact(argv.slice(1), env);
  if (argv[0] === 'inspect') return inspectCommand(argv.slice(1), env);
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
  const from = (name: string): string => read.from[name] ?? `--${name}`;
  const int = (name: string): number | undefined => intOption(read, name);
  const exclusive = (...names: string[]): void => {
    const given = names.filter((n) => values[n] !== undefined);
    if (given.length > 1) throw new ConfigError(`${given.map(from).join(' and ')} exclude each other`);
  };
  // Everything is checked before anything is opened, bound or created.
  const limits: Partial<Limits> = {
    ...(int('max-frame-bytes') !== undefined ? { maxFrameBytes: int('max-frame-bytes') as number } : {}),
    ...(int('max-batch') !== undefined ? { maxBatch: int('max-batch') as number } : {}),
    ...(int('max-connections') !== undefined ? { maxConnections: int('max-connections') as number } : {}),
    ...(int('messages-per-second') !== undefined ? { messagesPerSecond: int('messages-per-second') as number } : {}),
  };
  exclusive('jwt-secret', 'jwt-secret-file', 'jwt-public-key', 'jwks-url');
  const secret = values['jwt-secret'] ?? (values['jwt-secret-file'] !== undefined ? secretFile(values['jwt-secret-file'], from('jwt-secret-file')) : undefined);
  if (secret === '') throw new ConfigError(`${from(values['jwt-secret'] !== undefined ? 'jwt-secret' : 'jwt-secret-file')} is empty`);
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
  exclusive('peer-secret', 'peer-secret-file');
  const peerSecret = values['peer-secret'] ?? (values['peer-secret-file'] !== undefined ? secretFile(values['peer-secret-file'], from('peer-secret-file')) : undefined);
  const region = { ...(values['region'] !== undefined ? { region: values['region'] } : {}), ...(values.peer ? { peers: values.peer } : {}), ...(peerSecret !== undefined ? { peerSecret } : {}) };
  try {
    checkRegionOptions(region);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  exclusive('db', 'postgres');
  if (values['postgres-schema'] !== undefined && values['postgres'] === undefined) throw new ConfigError(`${from('postgres-schema')} needs --postgres`);
  const port = int('port') ?? 8787;
  if (port > 65535) throw new ConfigError(`${from('port')} must be at most 65535, got ${port}`);
  const host = values['host'] ?? '127.0.0.1';
  const dbPath = values['db'] ?? './data/syncline.db';
  if (values['postgres'] === undefined && existsSync(dbPath) && statSync(dbPath).isDirectory()) {
    throw new ConfigError(`${from('db')} ${dbPath} is a folder; give the database file's path, such as ${join(dbPath, 'syncline.db')}`);
  }
  if (values['static'] !== undefined && !(existsSync(values['static']) && statSync(values['static']).isDirectory())) throw new ConfigError(`${from('static')} ${values['static']} is not a folder`);
  const adminPort = int('admin-port');
  if (adminPort !== undefined && adminPort > 65535) throw new ConfigError(`${from('admin-port')} must be at most 65535, got ${adminPort}`);
  if (values['admin-host'] !== undefined && adminPort === undefined) throw new ConfigError(`${from('admin-host')} needs --admin-port`);
  const adminHost = values['admin-host'] ?? '127.0.0.1';
  // A port in use fails here, before a database is created or a warning printed.
  await portAvailable(port, host, from('port'), '--host');
  if (adminPort !== undefined) await portAvailable(adminPort, adminHost, from('admin-port'), '--admin-host');
  const logger = pino({ level });
  let storage;
  if (values['postgres'] !== undefined) {
    const url = values['postgres'];
    const pg = postgresStorage({
      connectionString: url,
      ...(values['postgres-schema'] !== undefined ? { schema: values['postgres-schema'] } : {}),
      onError: (error) => logger.error({ err: error }, 'postgres storage error'),
    });
    // Unreachable database or a schema from a newer server: exit now, not at the first push.
    await pg.ready().catch(async (error: unknown) => {
      await pg.close();
      const e = error as Error & { code?: string };
      throw new Error(`PostgreSQL at ${redact(url)}: ${e.message || e.code || String(error)}`);
    });
    storage = pg;
  } else {
    storage = sqliteStorage({ path: dbPath });
  }
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
  if (argv.includes('--help')) {
    process.stdout.write(`${TOKEN_USAGE}\n`);
    return;
  }
  // Only the secret, issuer and audience come from the environment (a server's own variables).
  const read = readOptions(argv, Object.fromEntries(Object.entries(env).filter(([k]) => /^SYNCLINE_JWT_(SECRET|SECRET_FILE|ISSUER|AUDIENCE)$/.test(k))), TOKEN_OPTIONS);
  const values = read.values as Record<string, string | undefined> & { space?: string[] };
  const from = (name: string): string => read.from[name] ?? `--${name}`;
  if (values['jwt-secret'] !== undefined && values['jwt-secret-file'] !== undefined) throw new ConfigError(`${from('jwt-secret')} and ${from('jwt-secret-file')} exclude each other`);
  const secret = values['jwt-secret'] ?? (values['jwt-secret-file'] !== undefined ? secretFile(values['jwt-secret-file'], from('jwt-secret-file')) : undefined);
  if (secret === undefined || secret === '') throw new ConfigError('token needs the server\'s secret: --jwt-secret, --jwt-secret-file, SYNCLINE_JWT_SECRET or SYNCLINE_JWT_SECRET_FILE');
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
  const expiresIn = durationMs(values['expires-in'] ?? '1h', from('expires-in'));
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
  if (argv.includes('--help')) {
    process.stdout.write(`${BACKUP_USAGE}\n`);
    return;
  }
  const specs: OptionSpec[] = [{ name: 'to', type: 'string', help: '' }, ...DATABASE_OPTIONS];
  const read = readOptions(argv, envFor(env, specs.filter((s) => s.name === 'db')), specs);
  const values = read.values as Record<string, string | undefined>;
  if (values['postgres'] !== undefined) throw new ConfigError('backup copies SQLite databases; for PostgreSQL use pg_dump (pg_dump --schema syncline URL > backup.sql) or your provider\'s snapshots');
  const to = values['to'];
  if (to === undefined || to === '') throw new ConfigError('backup needs --to FILE (where the copy goes)');
  const from = values['db'] ?? './data/syncline.db';
  if (!existsSync(from)) throw new ConfigError(`${read.from['db'] ?? '--db'} ${from}: no such database`);
  if (statSync(from).isDirectory()) throw new ConfigError(`${read.from['db'] ?? '--db'} ${from} is a folder; give the database file's path`);
  if (existsSync(to)) throw new ConfigError(`--to ${to} exists; give a new file (a backup never overwrites)`);
  const { pages, bytes } = await backupSqlite(from, to);
  process.stdout.write(`backed up ${from} to ${to}: ${pages} pages, ${bytes} bytes\n`);
}

/** `syncline-server compact`: log compaction now (COMPACT_USAGE). */
async function compact(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (argv.includes('--help')) {
    process.stdout.write(`${COMPACT_USAGE}\n`);
    return;
  }
  const specs: OptionSpec[] = [...SERVER_OPTIONS.filter((o) => o.name === 'keep-log'), ...DATABASE_OPTIONS];
  const read = readOptions(argv, envFor(env, specs), specs);
  const keep = intOption(read, 'keep-log');
  if (keep === undefined) throw new ConfigError('compact needs --keep-log N (how many of each space\'s latest changes to keep)');
  const storage = await openStorage(read);
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
  if (argv.includes('--help')) {
    process.stdout.write(`${INSPECT_USAGE}\n`);
    return;
  }
  const specs: OptionSpec[] = [{ name: 'admin', type: 'string', help: '' }, { name: 'json', type: 'boolean', help: '' }, ...DATABASE_OPTIONS];
  const read = readOptions(argv, values(argv).has('--admin') ? {} : envFor(env, DATABASE_OPTIONS), specs);
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
    const storage = await openStorage(read);
    try {
      inspection = { region: undefined, ...(await inspectStorage(storage)) };
    } finally {
      await storage.close();
    }
  }
  process.stdout.write(read.values['json'] ? `${JSON.stringify(inspection, null, 2)}\n` : formatInspection(inspection, Date.now()));
}

/** The arguments given, for checks made before parsing. */
function values(argv: readonly string[]): Set<string> {
  return new Set(argv.map((a) => a.split('=')[0] as string));
}

/** The storage a subcommand's --db / --postgres name (checked first: a missing SQLite file is not created). */
async function openStorage(read: ReadOptions): Promise<ServerStorage> {
  const values = read.values as Record<string, string | undefined>;
  const from = (name: string): string => read.from[name] ?? `--${name}`;
  if (values['db'] !== undefined && values['postgres'] !== undefined) throw new ConfigError(`${from('db')} and ${from('postgres')} exclude each other`);
  if (values['postgres-schema'] !== undefined && values['postgres'] === undefined) throw new ConfigError(`${from('postgres-schema')} needs --postgres`);
  if (values['postgres'] !== undefined) {
    const url = values['postgres'];
    const pg = postgresStorage({ connectionString: url, ...(values['postgres-schema'] !== undefined ? { schema: values['postgres-schema'] } : {}), onError: () => undefined });
    await pg.ready().catch(async (error: unknown) => {
      await pg.close();
      throw new Error(`PostgreSQL at ${redact(url)}: ${(error as Error).message}`);
    });
    return pg;
  }
  const path = values['db'] ?? './data/syncline.db';
  if (!existsSync(path)) throw new ConfigError(`${from('db')} ${path}: no such database`);
  return sqliteStorage({ path });
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

/** A secret from a file: its text without one trailing newline. */
function secretFile(path: string, option: string): string {
  return readText(path, option).replace(/\r?\n$/, '');
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

/** `syncline-server retire REPLICA...`: retires replicas in a server's database. */
async function retire(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { db: { type: 'string' }, postgres: { type: 'string' }, 'postgres-schema': { type: 'string' }, help: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (positionals.length === 0) throw new Error('retire needs the ids of the replicas to retire');
  const bad = positionals.find((id) => !isReplicaId(id));
  if (bad !== undefined) throw new Error(`not a replica id: ${JSON.stringify(bad)} (1-64 of A-Z a-z 0-9 _ -)`);
  if (values.postgres !== undefined && values.db !== undefined) throw new Error('--db and --postgres exclude each other');
  const storage =
    values.postgres !== undefined
      ? postgresStorage({ connectionString: values.postgres, ...(values['postgres-schema'] !== undefined ? { schema: values['postgres-schema'] } : {}) })
      : sqliteStorage({ path: values.db ?? './data/syncline.db' });
  try {
    const retired = await storage.retire(positionals as ReplicaId[], Date.now());
    const already = positionals.filter((id) => !retired.includes(id as ReplicaId));
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
