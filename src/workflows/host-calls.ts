// Calls to the service's host (check, restart, verify on the host's own queue) with their options,
// and how their failures read as attempt results: the host side of effects.ts.
import { ActivityFailure, ApplicationFailure, proxyActivities, TimeoutFailure } from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { HostActivities } from '../activities';
import type { Policy } from '../policy/policy';
import { HOST_ERRORS, hostTaskQueue } from './definitions';

const NON_RETRYABLE: readonly string[] = Object.values(HOST_ERRORS);

/** How a failed host call reads as an attempt result. */
export interface FailureReading {
  reason: string;
  detail: string;
  /** Whether the restart command may have run (counts against the budget, conservatively). */
  restarted: boolean;
}

export function readFailure(err: unknown, restartMayHaveRun: boolean): FailureReading {
  const detail = err instanceof Error ? err.message : String(err);
  if (err instanceof ActivityFailure) {
    const cause = err.cause;
    if (cause instanceof TimeoutFailure) {
      if (cause.timeoutType === TimeoutType.SCHEDULE_TO_START) {
        return { reason: 'host-unreachable', detail: 'no worker polled the host queue in time', restarted: false };
      }
      return {
        reason: 'host-timeout',
        detail: `host worker stopped responding (${cause.timeoutType} timeout)`,
        restarted: restartMayHaveRun,
      };
    }
    if (cause instanceof ApplicationFailure) {
      const text = cause.message;
      switch (cause.type) {
        case HOST_ERRORS.restartFailed:
          return { reason: 'restart-command-failed', detail: text, restarted: true };
        case HOST_ERRORS.notAllowed:
          return { reason: 'not-allowed', detail: text, restarted: false };
        case HOST_ERRORS.invalidUnit:
          return { reason: 'invalid-unit', detail: text, restarted: false };
        case HOST_ERRORS.hostStateUnwritable:
          return { reason: 'host-state-unwritable', detail: text, restarted: false };
        default:
          return { reason: 'host-error', detail: text, restarted: restartMayHaveRun };
      }
    }
  }
  return { reason: 'error', detail, restarted: restartMayHaveRun };
}

/** Whether the failed activity call started on a worker (a schedule-to-start timeout means it never did). */
export function callStarted(err: unknown): boolean {
  return !(
    err instanceof ActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START
  );
}

/** Whether a failed restart call is worth calling again with the same attempt id (the host makes it idempotent). */
export function worthRetrying(err: unknown): boolean {
  if (!(err instanceof ActivityFailure)) return false;
  const cause = err.cause;
  if (cause instanceof TimeoutFailure) return cause.timeoutType !== TimeoutType.SCHEDULE_TO_START;
  if (cause instanceof ApplicationFailure) return !cause.nonRetryable && !NON_RETRYABLE.includes(cause.type ?? '');
  return true;
}

/** The host's activities for one incident's policy, on the host's own task queue. */
export function hostActivities(host: string, p: Policy) {
  const common = { taskQueue: hostTaskQueue(host), scheduleToStartTimeout: p.hostTimeoutMs };
  const nonRetryableErrorTypes = [...NON_RETRYABLE];
  return {
    check: proxyActivities<HostActivities>({
      ...common,
      startToCloseTimeout: '30s',
      retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes },
    }).checkService,
    // One call per Temporal activity: the workflow retries it (same attempt id) and so knows
    // whether any call started, i.e. whether systemctl may have run.
    restartOnce: proxyActivities<HostActivities>({
      ...common,
      startToCloseTimeout: '6m',
      heartbeatTimeout: '20s',
      retry: { maximumAttempts: 1 },
    }).restartService,
    // Runs from before 'restart-retried-by-workflow': Temporal retries. Re-runs are safe: the
    // activity detects a restart already done for the same attempt id.
    restart: proxyActivities<HostActivities>({
      ...common,
      startToCloseTimeout: '6m',
      heartbeatTimeout: '20s',
      retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes },
    }).restartService,
    verify: proxyActivities<HostActivities>({
      ...common,
      startToCloseTimeout: p.verifyTimeoutMs + 60_000,
      heartbeatTimeout: '30s',
      retry: { maximumAttempts: 2, initialInterval: '1s', nonRetryableErrorTypes },
    }).verifyService,
  };
}

export type HostCalls = ReturnType<typeof hostActivities>;
