/** What a token provider does: issue a token for a user, and tell who a token stands for. */
import type { AuthInfo } from './authorize.js';
import type { AuthState, User } from './state.js';

export interface TokenProvider {
  /** A token for `user`, issued against auth state `s` (whose password check just passed). */
  issue(user: User, s: AuthState): Promise<string>;
  /** Who the token stands for, or null when it is not (or no longer) valid. */
  info(token: string, s: AuthState): Promise<AuthInfo | null>;
  /** Best-effort cleanup after a user's tokens became void (null: every user's). */
  forget(user: string | null): Promise<void>;
  close(): void;
}
