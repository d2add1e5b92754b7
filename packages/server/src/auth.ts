/**
 * Authentication: an `authenticate` hook, or built-in JWT (jose). A grant maps
 * spaces to 'read' or 'write'. JWT claims: `spaces: { "<space>": "read" | "write" }`,
 * where the key "*" grants every space.
 */
import type { Access, ReplicaId, SpaceId } from '@syncline/core/internal';
import { SynclineError } from '@syncline/core/internal';
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, importSPKI, jwtVerify, type JWTVerifyGetKey, type KeyObject } from "jose";

/** What a hello asks for, as the `authenticate` hook sees it. */
export interface AuthRequest {
  /** The hello's token (the client's `sync.token`), if it sent one. */
  readonly token: string | undefined;
  /** The replica asking (not authenticated: any client can claim any id). */
  readonly replica: ReplicaId;
  /** The spaces it asks to sync. */
  readonly spaces: readonly SpaceId[];
}

/** What an `authenticate` hook grants one connection. */
export interface Grant {
  /** Who this is (for logs). */
  readonly subject: string;
  /** Access to a space, or undefined when not granted. */
  access(space: SpaceId): Access | undefined;
  /**
   * When the credentials stop being valid (ms since the epoch; a JWT's `exp`):
   * the server closes the connection then with `unauthenticated`, and a client
   * with a token function reconnects with a fresh token.
   */
  readonly expiresAt?: number;
  /**
   * A backend service (a JWT with `role: "service"`): may use the HTTP API
   * (`/api/v1`, server README "Backend API") for the spaces it may access.
   */
  readonly service?: boolean;
}

/** Returns a grant, or throws SynclineError('unauthenticated' | 'forbidden'). */
export type Authenticate = (request: AuthRequest) => Promise<Grant>;

/**
 * A refusal by an `authenticate` hook: the server sends its code (fatal) and
 * message to the client. Any other error a hook throws is sent as `unauthenticated`.
 */
export class AuthError extends SynclineError {
  /** 'AuthError'. */
  override name = 'AuthError';
  constructor(
    /** `unauthenticated`: no valid credentials; `forbidden`: valid, but not for what was asked. */
    override readonly code: 'unauthenticated' | 'forbidden',
    message: string,
  ) {
    super(code, message);
  }
}

/** Grants everyone 'write' to every space (and the HTTP API), with the subject 'anonymous': the default without `authenticate` or `jwt`. */
export const openAccess: Authenticate = async () => ({ subject: 'anonymous', access: () => 'write', service: true });

/**
 * A grant from a `spaces` claim: `{ "<space>": "read" | "write" }`, where the
 * key "*" covers every space not named. Entries with other values, and a claim
 * that is not an object, grant nothing.
 * @param subject - Who it is, for logs.
 * @param claim - The claim's value, unchecked.
 * @param expiresAt - When the grant ends, ms since the epoch (the connection is then closed with `unauthenticated`).
 * @param service - A backend service (a JWT's `role: "service"`): may use the HTTP API.
 */
export function grantFromClaim(subject: string, claim: unknown, expiresAt?: number, service = false): Grant {
  const table = new Map<string, Access>();
  if (typeof claim === 'object' && claim !== null && !Array.isArray(claim)) {
    for (const [space, access] of Object.entries(claim)) if (access === 'read' || access === 'write') table.set(space, access);
  }
  return { subject, access: (space) => table.get(space) ?? table.get('*'), ...(expiresAt !== undefined ? { expiresAt } : {}), ...(service ? { service } : {}) };
}

/** Options of jwtAuth (and of SyncServerOptions.jwt, without `now`). Give one of `secret`, `publicKey` or `jwksUrl`. */
export interface JwtOptions {
  /** HMAC secret (HS256, HS384, HS512). */
  readonly secret?: string;
  /** RSA public key, PEM (RS256). */
  readonly publicKey?: string;
  /** A JWKS URL (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA). */
  readonly jwksUrl?: string;
  /** Required `iss`. */
  readonly issuer?: string;
  /** Required `aud`. */
  readonly audience?: string;
  /** The algorithms accepted; default: those of the key kind above. `none` is never accepted. */
  readonly algorithms?: readonly string[];
  /** Accept tokens without `exp` (they never expire). Default false: refused. */
  readonly allowNoExpiry?: boolean;
  /** The clock that `exp` and `nbf` are checked against (ms since the epoch). Default: the system clock. */
  readonly now?: () => number;
}

const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/**
 * An `authenticate` hook that verifies a JWT (jose) and grants what its
 * `spaces` claim says (grantFromClaim); `sub` is the subject, `exp` the expiry.
 * The hook refuses with AuthError `unauthenticated` a missing, invalid,
 * expired or (unless `allowNoExpiry`) expiry-less token; without a `secret`,
 * `publicKey` or `jwksUrl` every call rejects with an Error.
 * @throws TypeError when `algorithms` leaves no algorithm but `none`.
 */
export function jwtAuth(options: JwtOptions): Authenticate {
  let key: Uint8Array | KeyObject | JWTVerifyGetKey | undefined;
  const getKey = async () => {
    if (key) return key;
    if (options.secret) key = new TextEncoder().encode(options.secret);
    else if (options.publicKey) key = (await importSPKI(options.publicKey, 'RS256')) as KeyObject;
    else if (options.jwksUrl) key = createRemoteJWKSet(new URL(options.jwksUrl));
    else throw new Error('jwt auth needs a secret, a publicKey or a jwksUrl');
    return key;
  };
  const algorithms = [...(options.algorithms ?? (options.secret ? HMAC_ALGORITHMS : options.publicKey ? ['RS256'] : JWKS_ALGORITHMS))].filter((a) => a.toLowerCase() !== 'none');
  if (algorithms.length === 0) throw new TypeError('jwt.algorithms must name at least one algorithm other than none');
  return async ({ token }) => {
    if (!token) throw new AuthError('unauthenticated', 'a token is required: pass sync.token to createReplica');
    try {
      const k = await getKey();
      const { payload } = await jwtVerify(token, k as Uint8Array, {
        algorithms,
        ...(options.allowNoExpiry ? {} : { requiredClaims: ['exp'] }),
        ...(options.issuer ? { issuer: options.issuer } : {}),
        ...(options.audience ? { audience: options.audience } : {}),
        ...(options.now ? { currentDate: new Date(options.now()) } : {}),
      });
      return grantFromClaim(typeof payload.sub === 'string' ? payload.sub : 'unknown', payload['spaces'], typeof payload.exp === 'number' ? payload.exp * 1000 : undefined, payload['role'] === 'service');
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new AuthError('unauthenticated', 'the token has expired; get a new one');
      if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'exp') throw new AuthError('unauthenticated', 'the token has no expiry (exp); this server accepts none without one');
      if (error instanceof joseErrors.JOSEError) throw new AuthError('unauthenticated', `the token was refused: ${error.code}`);
      throw error;
    }
  };
}

export { createLocalJWKSet };
