// The one way the client layer calls Temporal, and the one error its callers read: the API answers
// an ActionError with its HTTP status, the CLI with its exit code.
import type { Client } from '@temporalio/client';

/**
 * `unavailable`: Temporal could not be reached or did not answer in time (retry later).
 * `unreadable`: Temporal answered, but the service's workflow could not answer its state query.
 */
export type ActionErrorCode = 'not-found' | 'ambiguous' | 'conflict' | 'unavailable' | 'invalid' | 'unreadable';

export class ActionError extends Error {
  constructor(
    readonly code: ActionErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ActionError';
  }
}

/** Temporal could not be reached, as the client surfaces it: gRPC UNAVAILABLE (14), DEADLINE_EXCEEDED (4), transport errors. */
function unreachable(err: unknown): boolean {
  const e = err as { code?: number; name?: string; message?: string } | null;
  if (!e) return false;
  if (e.code === 14 || e.code === 4) return true;
  if (e.name === 'TransportError') return true;
  if (e.name === 'ServiceError') {
    // A ServiceError wraps the gRPC error: Temporal answering "no" (FAILED_PRECONDITION, ...) is not unreachable.
    const cause = (err as { cause?: { code?: unknown } }).cause;
    return typeof cause?.code === 'number' ? cause.code === 14 || cause.code === 4 : true;
  }
  return /UNAVAILABLE|DEADLINE_EXCEEDED|ECONNREFUSED|Failed to connect|connect ECONN/i.test(e.message ?? '');
}

/**
 * Runs Temporal calls under one deadline (none when `timeoutMs` is null). An unreachable Temporal
 * becomes ActionError('unavailable'); any other error (Temporal answered "no") passes unchanged.
 */
export async function callTemporal<T>(client: Client, timeoutMs: number | null, fn: () => Promise<T>): Promise<T> {
  try {
    return timeoutMs === null ? await fn() : await client.connection.withDeadline(Date.now() + timeoutMs, fn);
  } catch (err) {
    if (err instanceof ActionError || !unreachable(err)) throw err;
    throw new ActionError('unavailable', `Temporal is unreachable: ${(err as Error).message}`, { cause: err });
  }
}

/** Whether a call failed because Temporal is unreachable: the caller answers 503 / exit 4 and the sender retries. */
export function isUnavailable(err: unknown): boolean {
  return err instanceof ActionError && err.code === 'unavailable';
}
