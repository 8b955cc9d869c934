/**
 * etcd's JWT tokens (--auth-token jwt,pub-key=...,priv-key=...,sign-method=RS256,ttl=5m):
 * signed claims {username, revision, exp}; stateless, so every replica with the same keys
 * accepts them. The revision claim is the auth revision at issue: once auth data changes,
 * writes with an older token get etcd's "revision of auth store is old" and clients
 * re-authenticate. With only a public key the proxy verifies tokens but cannot issue them.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { jwtVerify, SignJWT } from 'jose';
import type { AuthInfo } from './authorize.js';
import type { AuthState, User } from './state.js';
import type { TokenProvider } from './tokens.js';
import { EtcdError } from '../etcd/errors.js';
import { status } from '@grpc/grpc-js';
import type { JwtOptions } from '../config/auth-options.js';

const METHODS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];

export class JwtTokens implements TokenProvider {
  private readonly privateKey: KeyObject | null;
  private readonly publicKey: KeyObject;

  constructor(private readonly o: JwtOptions) {
    if (!METHODS.includes(o.signMethod)) throw new Error(`auth token: unsupported JWT sign-method ${o.signMethod} (one of ${METHODS.join(', ')})`);
    this.privateKey = o.privateKeyFile ? createPrivateKey(readFileSync(o.privateKeyFile)) : null;
    if (o.publicKeyFile) this.publicKey = createPublicKey(readFileSync(o.publicKeyFile));
    else if (this.privateKey) this.publicKey = createPublicKey(this.privateKey);
    else throw new Error('auth token: jwt needs priv-key (to issue tokens) or pub-key (to verify them)');
  }

  async issue(user: User, s: AuthState): Promise<string> {
    // etcd: "auth: token signing attempted with verify-only key".
    if (!this.privateKey) throw new EtcdError(status.UNKNOWN, 'auth: token signing attempted with verify-only key');
    return new SignJWT({ username: user.name, revision: Number(s.revision) })
      .setProtectedHeader({ alg: this.o.signMethod })
      .setExpirationTime(Math.floor(Date.now() / 1000) + this.o.ttlSeconds)
      .sign(this.privateKey);
  }

  async info(token: string): Promise<AuthInfo | null> {
    try {
      const { payload } = await jwtVerify(token, this.publicKey, { algorithms: [this.o.signMethod] });
      if (typeof payload.username !== 'string' || typeof payload.revision !== 'number') return null;
      return { user: payload.username, revision: BigInt(Math.trunc(payload.revision)) };
    } catch {
      return null;
    }
  }

  async forget(): Promise<void> {}

  close(): void {}
}
