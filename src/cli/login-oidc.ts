/**
 * `twoway login` for a peer with `verify = "oidc"`. Stub until the OIDC sign-in lands (it
 * replaces this file, keeping `loginOidc` and its options).
 */
import { CliError } from './fail.js';

/** Sends one verification request to the server through the client daemon; resolves with its answer. */
export type VerifyAsk = (message: Record<string, unknown>) => Promise<Record<string, unknown>>;

export interface LoginOidcOptions {
  readonly ask: VerifyAsk;
  /** Where the URL and progress go (default process.stderr). */
  readonly stderr?: NodeJS.WritableStream & { isTTY?: boolean };
}

/** Signs in at the identity provider and resolves with the server's answer to `finish`. */
export function loginOidc(_options: LoginOidcOptions): Promise<Record<string, unknown>> {
  return Promise.reject(new CliError('OIDC login not built'));
}
