/**
 * Which entry of the node's catalog (`comx-cdr-fetch.errors.<key>`) tells a user what went wrong in a
 * run, with the values it needs; null for an error to pass on as it is.
 */
import { HttpStatusError, isTransientNetworkError } from '../common/http';
import { ComxAuthError, ComxRequestError } from './client';
import { FetchError } from './fetch';
import { RecordingTooLargeError } from './recording';
import { ArchiveError } from './ziprec';

export interface Failure {
  key: FetchError['code'] | 'auth' | 'http' | 'httpRetried' | 'zip' | 'tooLarge' | 'request' | 'network';
  vars: Record<string, string | number>;
}

/** How many times the PBX was asked (ComxClient.open notes it on the error). */
const attemptsOf = (err: unknown): number => (err as { attempts?: number })?.attempts ?? 1;

export function describeFailure(err: unknown): Failure | null {
  if (err instanceof FetchError) return { key: err.code, vars: err.vars };
  if (err instanceof ComxAuthError) return { key: 'auth', vars: { status: err.status } };
  if (err instanceof HttpStatusError) {
    // a 404 is not asked again; a 503 may have been asked four times: say which
    const attempts = attemptsOf(err);
    return { key: attempts > 1 ? 'httpRetried' : 'http', vars: { status: err.status, detail: err.body.slice(0, 200), attempts } };
  }
  if (err instanceof ArchiveError) return { key: 'zip', vars: { error: err.message } };
  if (err instanceof RecordingTooLargeError) return { key: 'tooLarge', vars: { limit: err.limit.toLocaleString('en-US') } };
  if (err instanceof ComxRequestError) return { key: 'request', vars: { error: err.message } };
  if (isTransientNetworkError(err) || /timeout|terminated|socket/i.test((err as Error)?.message ?? '')) return { key: 'network', vars: { error: (err as Error).message, attempts: attemptsOf(err) } };
  return null;
}
