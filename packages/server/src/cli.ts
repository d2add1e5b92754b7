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
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isReplicaId, type ReplicaId } from '@syncline/core/internal';
import { pino } from 'pino';
import { announcedLimits, checkRegionOptions, type Limits } from './options.js';
import { createSyncServer } from './server.js';
import { postgresStorage } from './storage/postgres-storage.js';
import { sqliteStorage } from './storage/sqlite-storage.js';

const USAGE = `usage: syncline-server [options]
  --port N                 port to listen on (default 8787; 0 = any free port)
  --host H                 address to bind (default 127.0.0.1)
  --db PATH                SQLite database file (default ./data/syncline.db)
  --postgres URL           PostgreSQL instead of SQLite (postgres://user@host:5432/db);
                           several servers may share it (password: PGPASSWORD)
  --postgres-schema S      schema for the tables (default syncline)
  --jwt-secret S           require JWTs signed with this HMAC secret
  --jwt-public-key FILE    require JWTs signed with this RSA public key (PEM)
  --jwks-url URL           require JWTs signed with a key from this JWKS
  --jwt-issuer ISS         require this issuer (iss) in JWTs
  --jwt-audience AUD       require this audience (aud) in JWTs
  --jwt-algorithms A,B     accepted algorithms (default: those of the key kind)
  --jwt-allow-no-expiry    accept JWTs without exp (never expire; refused by default)
  --static DIR             serve this folder at / (the calendar build)
  --allow-origin ORIGIN    a browser origin allowed to sync (repeat for more; * for any);
                           default: any with auth on, this server's own host with auth off
  --keep-log N             compact each space's log to its last N changes
  --max-frame-bytes N      largest frame, both ways (default 1048576; at least 589824)
  --max-batch N            most changes per push (default 1000; at least 1)
  --max-connections N      most open connections (default 10000)
  --messages-per-second N  per connection (default 200; at least 5)
  --max-clock-drift MS     how far ahead of this server's clock a change may be
                           stamped (default 300000; at least 60000)
  --log-level L            pino level (default info)
  --region NAME            this deployment's region name: serves region links to its peers
  --peer URL               a peer region to follow (ws://host:port; repeat for each peer)
  --peer-secret S          the peer credential links must present and this server's links send
                           (also SYNCLINE_PEER_SECRET); required for links when JWT auth is on
  --peer-secret-file FILE  the same, read from a file (trailing newline dropped)
  --gc-interval MS         how often stability horizons move and deleted records are
                           forgotten (default 60000; 0 = never)
  --retire-after MS        retire replicas not seen for this long (default 7776000000,
                           90 days; 0 = never): they stop holding horizons back
  --help

usage: syncline-server retire REPLICA... [--db PATH | --postgres URL [--postgres-schema S]]
  Retires replicas for good in the database a server uses (running or not): they stop
  holding stability horizons back, and their next hello or push is refused with
  replica_retired (the replica starts again under a new id).`;

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'retire') return retire(argv.slice(1));
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      db: { type: 'string' },
      postgres: { type: 'string' },
      'postgres-schema': { type: 'string' },
      'jwt-secret': { type: 'string' },
      'jwt-public-key': { type: 'string' },
      'jwks-url': { type: 'string' },
      'jwt-issuer': { type: 'string' },
      'jwt-audience': { type: 'string' },
      'jwt-algorithms': { type: 'string' },
      'jwt-allow-no-expiry': { type: 'boolean' },
      static: { type: 'string' },
      'allow-origin': { type: 'string', multiple: true },
      'keep-log': { type: 'string' },
      'max-frame-bytes': { type: 'string' },
      'max-batch': { type: 'string' },
      'max-connections': { type: 'string' },
      'messages-per-second': { type: 'string' },
      'max-clock-drift': { type: 'string' },
      'log-level': { type: 'string' },
      region: { type: 'string' },
      peer: { type: 'string', multiple: true },
      'peer-secret': { type: 'string' },
      'peer-secret-file': { type: 'string' },
      'gc-interval': { type: 'string' },
      'retire-after': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const int = (name: keyof typeof values): number | undefined => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${String(raw)}`);
    return n;
  };
  const limits: Partial<Limits> = {
    ...(int('max-frame-bytes') !== undefined ? { maxFrameBytes: int('max-frame-bytes') as number } : {}),
    ...(int('max-batch') !== undefined ? { maxBatch: int('max-batch') as number } : {}),
    ...(int('max-connections') !== undefined ? { maxConnections: int('max-connections') as number } : {}),
    ...(int('messages-per-second') !== undefined ? { messagesPerSecond: int('messages-per-second') as number } : {}),
  };
  const key = values['jwt-secret']
    ? { secret: values['jwt-secret'] }
    : values['jwt-public-key']
      ? { publicKey: readFileSync(values['jwt-public-key'], 'utf8') }
      : values['jwks-url']
        ? { jwksUrl: values['jwks-url'] }
        : undefined;
  const claims = {
    ...(values['jwt-issuer'] !== undefined ? { issuer: values['jwt-issuer'] } : {}),
    ...(values['jwt-audience'] !== undefined ? { audience: values['jwt-audience'] } : {}),
    ...(values['jwt-algorithms'] !== undefined ? { algorithms: values['jwt-algorithms'].split(',').map((a) => a.trim()).filter(Boolean) } : {}),
    ...(values['jwt-allow-no-expiry'] ? { allowNoExpiry: true } : {}),
  };
  if (!key && Object.keys(claims).length > 0) throw new Error('--jwt-issuer, --jwt-audience, --jwt-algorithms and --jwt-allow-no-expiry need --jwt-secret, --jwt-public-key or --jwks-url');
  const jwt = key ? { ...key, ...claims } : undefined;
  const logger = pino({ level: values['log-level'] ?? 'info' });
  const keepLog = int('keep-log');
  const gc = {
    ...(int('gc-interval') !== undefined ? { intervalMs: int('gc-interval') as number } : {}),
    ...(int('retire-after') !== undefined ? { retireAfterMs: int('retire-after') as number } : {}),
  };
  const maxClockDrift = int('max-clock-drift');
  // Before any storage is opened: limits below the protocol's promise would wedge honest clients.
  announcedLimits(limits, maxClockDrift);
  if (values['peer-secret'] !== undefined && values['peer-secret-file'] !== undefined) throw new Error('--peer-secret and --peer-secret-file exclude each other');
  const peerSecret =
    values['peer-secret'] ??
    (values['peer-secret-file'] !== undefined ? readFileSync(values['peer-secret-file'], 'utf8').replace(/\r?\n$/, '') : undefined) ??
    (process.env['SYNCLINE_PEER_SECRET'] || undefined);
  const region = { ...(values.region !== undefined ? { region: values.region } : {}), ...(values.peer ? { peers: values.peer } : {}), ...(peerSecret !== undefined ? { peerSecret } : {}) };
  checkRegionOptions(region);
  if (values.postgres !== undefined && values.db !== undefined) throw new Error('--db and --postgres exclude each other');
  if (values['postgres-schema'] !== undefined && values.postgres === undefined) throw new Error('--postgres-schema needs --postgres');
  let storage;
  if (values.postgres !== undefined) {
    const pg = postgresStorage({
      connectionString: values.postgres,
      ...(values['postgres-schema'] !== undefined ? { schema: values['postgres-schema'] } : {}),
      onError: (error) => logger.error({ err: error }, 'postgres storage error'),
    });
    // Unreachable database or a schema from a newer server: exit now, not at the first push.
    await pg.ready().catch(async (error: unknown) => {
      await pg.close();
      const e = error as Error & { code?: string };
      throw new Error(`PostgreSQL at ${redact(values.postgres as string)}: ${e.message || e.code || String(error)}`);
    });
    storage = pg;
  } else {
    storage = sqliteStorage({ path: values.db ?? './data/syncline.db' });
  }
  const server = createSyncServer({
    port: int('port') ?? 8787,
    host: values.host ?? '127.0.0.1',
    storage,
    logger,
    limits,
    ...(jwt ? { jwt } : {}),
    ...(values.static ? { staticDir: values.static } : {}),
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
