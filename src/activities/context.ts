// Activity-context helpers that also work when an activity function is called directly
// (benchmarks, scripts): outside a Temporal activity they fall back to plain behaviour.
import { Context } from '@temporalio/activity';

function current(): Context | null {
  try {
    return Context.current();
  } catch {
    return null;
  }
}

export function activityHeartbeat(details?: unknown): void {
  current()?.heartbeat(details);
}

export function activitySleep(ms: number): Promise<void> {
  const ctx = current();
  return ctx ? ctx.sleep(ms) : new Promise((r) => setTimeout(r, ms));
}

export function activityAttempt(): number {
  return current()?.info.attempt ?? 1;
}

/** The run of the workflow that scheduled this activity (null outside an activity). */
export function activityWorkflowRunId(): string | null {
  return current()?.info.workflowExecution?.runId ?? null;
}

export function lastHeartbeatDetails<T>(): T | undefined {
  return current()?.info.heartbeatDetails as T | undefined;
}

type LogFn = (message: string, attrs?: Record<string, unknown>) => void;
const quiet: Record<'info' | 'warn' | 'error', LogFn> = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** The activity's logger inside an activity; silent when called directly (tests, scripts). */
export function activityLog(): Record<'info' | 'warn' | 'error', LogFn> {
  const ctx = current();
  return ctx ? ctx.log : quiet;
}
