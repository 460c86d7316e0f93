// Pure policy decisions: no I/O, no clocks of their own (time is always an argument), so the
// workflow can call them deterministically and tests can pin every edge.

export const HOUR_MS = 3_600_000;

export type Mode = 'auto' | 'approval' | 'dry-run';
export const MODES: readonly Mode[] = ['auto', 'approval', 'dry-run'];

/** Effective policy for one service, durations in milliseconds. */
export interface Policy {
  validationWindowMs: number;
  cooldownMs: number;
  maxRestartsPerHour: number;
  /** Escalate when consecutive failed attempts exceed this number. */
  maxConsecutiveFailures: number;
  verifyTimeoutMs: number;
  /** The unit must stay active (same process) this long to count as recovered. */
  verifyStableMs: number;
  /** Schedule-to-start timeout on the host's task queue: past it, the host counts as unreachable. */
  hostTimeoutMs: number;
  mode: Mode;
  /** Also require the triggering alert to clear in Prometheus before a restart counts as verified. */
  verifyAlertClears: boolean;
  /**
   * This many incidents inside the window make a service flapping (ServiceFlapping, then approval).
   * Optional: policies carried by runs from before it have none (the default applies).
   */
  flapping?: { incidents: number; windowMs: number };
}

export const DEFAULT_FLAPPING = { incidents: 5, windowMs: HOUR_MS };

export const DEFAULT_POLICY: Required<Policy> = {
  validationWindowMs: 120_000,
  cooldownMs: 60_000,
  maxRestartsPerHour: 3,
  maxConsecutiveFailures: 2,
  verifyTimeoutMs: 90_000,
  verifyStableMs: 10_000,
  hostTimeoutMs: 30_000,
  mode: 'auto',
  verifyAlertClears: false,
  flapping: DEFAULT_FLAPPING,
};

/** The part of the workflow state the policy reads. Times are epoch milliseconds. */
export interface PolicyState {
  /** Times of restarts that actually ran (the restart command was issued). */
  restarts: number[];
  /** Time of the last attempt, whether or not the restart command ran (cooldown counts from here). */
  lastAttemptAt: number | null;
  consecutiveFailures: number;
}

/** Restarts inside the sliding hour ending at `now`: the window is (now - 1h, now]. */
export function restartsInWindow(restarts: readonly number[], now: number): number[] {
  return restarts.filter((t) => t > now - HOUR_MS && t <= now);
}

/** Keeps only what the budget can still need, so carried state stays small. */
export function pruneRestarts(restarts: readonly number[], now: number): number[] {
  return restartsInWindow(restarts, now).sort((a, b) => a - b);
}

/** When the next restart is allowed by the hourly budget: `now` if a slot is free, Infinity for a budget of 0. */
export function budgetFreesAt(restarts: readonly number[], policy: Policy, now: number): number {
  if (policy.maxRestartsPerHour <= 0) return Infinity;
  const inWindow = restartsInWindow(restarts, now).sort((a, b) => a - b);
  if (inWindow.length < policy.maxRestartsPerHour) return now;
  // The slot frees when enough of the oldest restarts leave the window.
  const mustLeave = inWindow.length - policy.maxRestartsPerHour;
  return inWindow[mustLeave] + HOUR_MS;
}

/** End of the cooldown after the last attempt, or null when there is none. */
export function cooldownUntil(state: PolicyState, policy: Policy, now: number): number | null {
  if (state.lastAttemptAt == null) return null;
  const until = state.lastAttemptAt + policy.cooldownMs;
  return until > now ? until : null;
}

export type RestartDecision =
  | { kind: 'restart'; approved: boolean }
  | { kind: 'dry-run' }
  | { kind: 'paused' }
  | { kind: 'cooldown'; until: number }
  /** `until` is null when the budget never frees (a budget of 0): only an approval helps. */
  | { kind: 'exhausted'; until: number | null }
  | { kind: 'needs-approval' };

export interface DecisionInput {
  state: PolicyState;
  policy: Policy;
  now: number;
  /** A human approved one restart for this incident. */
  approved: boolean;
  paused: boolean;
}

/**
 * What to do about a confirmed problem. Order matters:
 * an approval overrides everything (that is what it is for), dry-run never acts, a pause holds,
 * then cooldown, then the hourly budget, then approval mode.
 */
export function decideRestart({ state, policy, now, approved, paused }: DecisionInput): RestartDecision {
  if (policy.mode === 'dry-run') return { kind: 'dry-run' };
  if (approved) return { kind: 'restart', approved: true };
  if (paused) return { kind: 'paused' };
  const cooldown = cooldownUntil(state, policy, now);
  if (cooldown != null) return { kind: 'cooldown', until: cooldown };
  const frees = budgetFreesAt(state.restarts, policy, now);
  if (frees > now) return { kind: 'exhausted', until: Number.isFinite(frees) ? frees : null };
  if (policy.mode === 'approval') return { kind: 'needs-approval' };
  return { kind: 'restart', approved: false };
}

/**
 * How long a failed attempt is remembered between incidents. Consecutive failures are reset by a
 * verified restart or a human's skip, not by the service recovering on its own (a service that
 * flaps between failed restarts must still reach ConsecutiveFailures); but an incident that opens
 * more than this long after the last failure starts counting from zero.
 */
export const FAILURE_MEMORY_MS = HOUR_MS;

/** The consecutive-failure count still in force for an incident opening at `now`. */
export function failuresInForce(
  consecutiveFailures: number,
  lastFailureAt: number | null | undefined,
  now: number,
): number {
  if (consecutiveFailures === 0 || lastFailureAt == null) return consecutiveFailures;
  return now - lastFailureAt > FAILURE_MEMORY_MS ? 0 : consecutiveFailures;
}

/** Consecutive failures after an attempt, and whether that crosses the escalation threshold. */
export function afterAttempt(
  consecutiveFailures: number,
  succeeded: boolean,
  policy: Policy,
): { consecutiveFailures: number; escalate: boolean } {
  if (succeeded) return { consecutiveFailures: 0, escalate: false };
  const next = consecutiveFailures + 1;
  return { consecutiveFailures: next, escalate: next > policy.maxConsecutiveFailures };
}

/** Whether a service that looks active at re-check still needs action. */
export function stillUnhealthy(check: {
  unitActive: boolean;
  /** Prometheus' answer on whether the triggering alert still fires; null when unknown or not configured. */
  alertStillFiring: boolean | null;
  /** Whether the workflow still holds the alert as firing (no resolved notification yet). */
  firingSignalled: boolean;
}): boolean {
  if (!check.unitActive) return true;
  if (check.alertStillFiring != null) return check.alertStillFiring;
  return check.firingSignalled;
}

export const PHASES = [
  'idle',
  'validating',
  'checking',
  'cooldown',
  'exhausted',
  'awaiting-approval',
  'restarting',
  'verifying',
  'escalated',
  'paused',
  'held',
] as const;
export type Phase = (typeof PHASES)[number];

export const STATUSES = ['OK', 'HEALING', 'CRITICAL'] as const;
export type Status = (typeof STATUSES)[number];

/** The numeric value of `selfhealing_service_status`. */
export const STATUS_VALUE: Record<Status, number> = { OK: 0, HEALING: 1, CRITICAL: 2 };

export function statusOf(phase: Phase, hasIncident: boolean): Status {
  switch (phase) {
    case 'exhausted':
    case 'escalated':
      return 'CRITICAL';
    case 'idle':
      return 'OK';
    case 'paused':
      return hasIncident ? 'HEALING' : 'OK';
    default:
      return 'HEALING';
  }
}

/** Merges per-service overrides over the defaults. */
export function mergePolicy(base: Policy, override: Partial<Policy> | undefined): Policy {
  return { ...base, ...(override ?? {}) };
}

/** Incidents remembered for flap detection: those inside the window, newest last, at most `cap`. */
export function recentIncidents(times: readonly number[], now: number, windowMs: number, cap = 100): number[] {
  return times.filter((t) => t > now - windowMs && t <= now).slice(-cap);
}

/** Whether the incidents inside the window (the one opening now included) make the service flapping. */
export function isFlapping(times: readonly number[], now: number, p: Policy['flapping'] | undefined): boolean {
  const f = p ?? DEFAULT_FLAPPING;
  return recentIncidents(times, now, f.windowMs).length >= f.incidents;
}
