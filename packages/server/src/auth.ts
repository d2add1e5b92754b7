/**
 * Authentication: an `authenticate` hook, or built-in JWT (jose). A grant maps
 * spaces to 'read' or 'write'. JWT claims: `spaces: { "<space>": "read" | "write" }`,
 * where the key "*" grants every space.
 */
import type { Access, ReplicaId, SpaceId } from '@syncline/core/internal';
import { SynclineError } from '@syncline/core/internal';
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, importSPKI, jwtVerify, type JWTVerifyGetKey, type KeyObject } from "jose";

export interface AuthRequest {
  readonly token: string | undefined;
  readonly replica: ReplicaId;
  readonly spaces: readonly SpaceId[];
}

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
}

/** Returns a grant, or throws SynclineError('unauthenticated' | 'forbidden'). */
export type Authenticate = (request: AuthRequest) => Promise<Grant>;

export class AuthError extends SynclineError {
  override name = 'AuthError';
  constructor(
    override readonly code: 'unauthenticated' | 'forbidden',
    message: string,
  ) {
    super(code, message);
  }
}

export const openAccess: Authenticate = async () => ({ subject: 'anonymous', access: () => 'write' });

export function grantFromClaim(subject: string, claim: unknown, expiresAt?: number): Grant {
  const table = new Map<string, Access>();
  if (typeof claim === 'object' && claim !== null && !Array.isArray(claim)) {
    for (const [space, access] of Object.entries(claim)) if (access === 'read' || access === 'write') table.set(space, access);
  }
  return { subject, access: (space) => table.get(space) ?? table.get('*'), ...(expiresAt !== undefined ? { expiresAt } : {}) };
}

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
  readonly now?: () => number;
}

const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

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
      return grantFromClaim(typeof payload.sub === 'string' ? payload.sub : 'unknown', payload['spaces'], typeof payload.exp === 'number' ? payload.exp * 1000 : undefined);
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new AuthError('unauthenticated', 'the token has expired; get a new one');
      if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'exp') throw new AuthError('unauthenticated', 'the token has no expiry (exp); this server accepts none without one');
      if (error instanceof joseErrors.JOSEError) throw new AuthError('unauthenticated', `the token was refused: ${error.code}`);
      throw error;
    }
  };
}

export { createLocalJWKSet };
