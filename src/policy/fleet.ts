// Fleet safety, the pure part: the mass-failure breaker of each scope (the fleet and each host),
// restart concurrency limits, declared dependencies, and the admission decision that combines
// them. No I/O and no clock of its own: the fleet coordinator workflow (src/workflows/fleet.ts)
// owns a FleetState (plain JSON, carried through continue-as-new) and calls these functions on it;
// they change the state they are given and say what happened, so the workflow can audit and
// escalate it.

export const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;
export type BreakerStateName = (typeof BREAKER_STATES)[number];

export const BREAKER_MODES = ['auto', 'manual-reset'] as const;
export type BreakerMode = (typeof BREAKER_MODES)[number];

/** Why an incident waits in phase `held` (the contract's reasons, plus `concurrency` and `flapping`). */
export const HOLD_REASONS = [
  'breaker',
  'breaker-unavailable',
  'dependency',
  'silenced',
  'flapping',
  'concurrency',
] as const;
export type HoldReason = (typeof HOLD_REASONS)[number];

/** The fleet-wide scope; each host is `host:<name>`. */
export const FLEET_SCOPE = 'fleet';
export const hostScope = (host: string) => `host:${host}`;
export const serviceKey = (host: string, service: string) => `${host}/${service}`;

export interface ScopeLimits {
  /** Trip when more than this many guarded services have an open incident at once. */
  maxOpenIncidents: number;
  /** Trip when more than this share (0–1) of the scope's guarded services have an open incident... */
  maxOpenShare: number;
  /** ...and the scope has at least this many services (1 of 2 down is no storm). */
  minServicesForShare: number;
}

export interface BreakerSettings {
  enabled: boolean;
  mode: BreakerMode;
  /** The count must stay at or under the thresholds this long before the half-open trial. */
  quietPeriodMs: number;
  fleet: ScopeLimits;
  host: ScopeLimits;
}

export interface FleetSettings {
  breaker: BreakerSettings;
  maxRestartsInFlight: number;
  maxRestartsInFlightPerHost: number;
  /** A restart slot that is never released (a crashed entity) frees itself after this long. */
  leaseMs: number;
  /** Guarded services per host, from the configuration. */
  servicesPerHost: Record<string, number>;
}

/**
 * Defaults for a 7-service homelab as for a 5,000-service fleet: the share catches a small fleet
 * (4 of 7 down at once), the absolute count a large one (21 of 5,000 down at once is a shared cause,
 * not bad luck); scopes of fewer than 4 services are judged by the count only.
 */
export const DEFAULT_FLEET_LIMITS: ScopeLimits = { maxOpenIncidents: 20, maxOpenShare: 0.5, minServicesForShare: 4 };
export const DEFAULT_HOST_LIMITS: ScopeLimits = { maxOpenIncidents: 10, maxOpenShare: 0.5, minServicesForShare: 4 };
export const DEFAULT_BREAKER: BreakerSettings = {
  enabled: true,
  mode: 'auto',
  quietPeriodMs: 300_000,
  fleet: DEFAULT_FLEET_LIMITS,
  host: DEFAULT_HOST_LIMITS,
};
export const DEFAULT_MAX_RESTARTS_IN_FLIGHT = 10;
export const DEFAULT_MAX_RESTARTS_IN_FLIGHT_PER_HOST = 2;
export const DEFAULT_LEASE_MS = 15 * 60_000;

export interface Breaker {
  state: BreakerStateName;
  /** When it entered this state. */
  since: number;
  /** Since when the count has been at or under the thresholds while open (null: it is over). */
  quietSince: number | null;
  /**
   * Whether crossing the threshold trips it. A human reset during a storm that is still going on
   * disarms it until the count drops under the threshold once; otherwise the reset would trip again
   * at the next step and a human could never take the fleet back by hand.
   */
  armed: boolean;
  /** Tripped by a human: stays open until a human resets it. */
  manual: boolean;
  /** The one service let through while half-open (its key), or null. */
  trial: string | null;
  by: string | null;
  reason: string;
}

export interface OpenIncident {
  host: string;
  service: string;
  since: number;
}

export interface Lease {
  host: string;
  service: string;
  incidentId: string;
  grantedAt: number;
  expiresAt: number;
  /** Scopes for which this restart is the half-open trial. */
  trialFor: string[];
  approved: boolean;
}

export interface AdmissionRequest {
  host: string;
  service: string;
  workflowId: string;
  incidentId: string;
  /** Which ask of the incident this is; the answer names it. */
  ask: number;
  /** A human approved this restart: it passes an open breaker and a dependency (not the concurrency limits). */
  approved: boolean;
  /** Keys (`host/service`) of the services this one depends on. */
  dependsOn: string[];
}

export interface Waiter extends AdmissionRequest {
  since: number;
  reason: HoldReason;
  detail: string;
}

export interface FleetState {
  breakers: Record<string, Breaker>;
  incidents: Record<string, OpenIncident>;
  leases: Record<string, Lease>;
  waiters: Record<string, Waiter>;
}

export function initialFleetState(): FleetState {
  return { breakers: {}, incidents: {}, leases: {}, waiters: {} };
}

export function closedBreaker(now: number): Breaker {
  return {
    state: 'closed',
    since: now,
    quietSince: null,
    armed: true,
    manual: false,
    trial: null,
    by: null,
    reason: '',
  };
}

/** Whether `open` incidents among `total` services cross a scope's limits. */
export function overThreshold(open: number, total: number, l: ScopeLimits): boolean {
  if (open > l.maxOpenIncidents) return true;
  return total >= l.minServicesForShare && total > 0 && open / total > l.maxOpenShare;
}

export interface ScopeCount {
  open: number;
  total: number;
  over: boolean;
  /** Services with an open incident in the scope (keys, sorted). */
  affected: string[];
}

export function scopeLimits(scope: string, s: BreakerSettings): ScopeLimits {
  return scope === FLEET_SCOPE ? s.fleet : s.host;
}

/** Every scope to judge: the fleet, each configured host, each host with an incident. */
export function scopesOf(st: FleetState, settings: FleetSettings): string[] {
  const hosts = new Set([...Object.keys(settings.servicesPerHost), ...Object.values(st.incidents).map((i) => i.host)]);
  return [FLEET_SCOPE, ...[...hosts].sort().map(hostScope)];
}

export function countScope(st: FleetState, settings: FleetSettings, scope: string): ScopeCount {
  const inScope = Object.entries(st.incidents).filter(([, i]) => scope === FLEET_SCOPE || hostScope(i.host) === scope);
  const total =
    scope === FLEET_SCOPE
      ? Object.values(settings.servicesPerHost).reduce((a, b) => a + b, 0)
      : (settings.servicesPerHost[scope.slice('host:'.length)] ?? 0);
  const open = inScope.length;
  return {
    open,
    total: Math.max(total, open),
    over: overThreshold(open, Math.max(total, open), scopeLimits(scope, settings.breaker)),
    affected: inScope.map(([k]) => k).sort(),
  };
}

export type BreakerEvent =
  | { kind: 'tripped'; scope: string; count: ScopeCount }
  | { kind: 'half-open'; scope: string }
  | { kind: 'closed'; scope: string; reason: string }
  | { kind: 'reopened'; scope: string; reason: string }
  | { kind: 'rearmed'; scope: string };

/** One breaker's step at `now` given its scope's count: the state machine's automatic transitions. */
export function stepBreaker(
  b: Breaker,
  scope: string,
  count: ScopeCount,
  s: BreakerSettings,
  now: number,
): BreakerEvent | null {
  if (b.state === 'closed') {
    if (!b.armed) {
      if (count.over) return null;
      b.armed = true;
      return { kind: 'rearmed', scope };
    }
    if (!s.enabled || !count.over) return null;
    Object.assign(b, { state: 'open', since: now, quietSince: null, manual: false, trial: null, by: null });
    b.reason = `${count.open} of ${count.total} guarded services have an open incident`;
    return { kind: 'tripped', scope, count };
  }
  if (b.manual) return null;
  if (!s.enabled) {
    Object.assign(b, closedBreaker(now));
    return { kind: 'closed', scope, reason: 'breaker disabled in the configuration' };
  }
  if (b.state === 'open') {
    if (count.over) {
      b.quietSince = null;
      return null;
    }
    b.quietSince ??= now;
    if (s.mode === 'manual-reset' || now - b.quietSince < s.quietPeriodMs) return null;
    Object.assign(b, { state: 'half-open', since: now, trial: null });
    return { kind: 'half-open', scope };
  }
  // Half-open: the trial decides; with nothing left open there is nothing to try.
  if (count.open === 0 && b.trial == null) {
    Object.assign(b, closedBreaker(now));
    return { kind: 'closed', scope, reason: 'no open incidents left' };
  }
  return null;
}

/** Steps every scope's breaker; the events in scope order. */
export function stepBreakers(st: FleetState, settings: FleetSettings, now: number): BreakerEvent[] {
  const events: BreakerEvent[] = [];
  for (const scope of scopesOf(st, settings)) {
    const b = (st.breakers[scope] ??= closedBreaker(now));
    const e = stepBreaker(b, scope, countScope(st, settings, scope), settings.breaker, now);
    if (e) events.push(e);
  }
  return events;
}

/** A human trips a scope: open until a human resets it; no MassFailure (the human knows). */
export function tripByHand(st: FleetState, scope: string, by: string | null, reason: string, now: number): void {
  st.breakers[scope] = {
    state: 'open',
    since: now,
    quietSince: null,
    armed: true,
    manual: true,
    trial: null,
    by,
    reason: reason || 'tripped by hand',
  };
}

/** A human resets a scope: closed, and disarmed while its count is still over the threshold. */
export function resetByHand(
  st: FleetState,
  settings: FleetSettings,
  scope: string,
  by: string | null,
  now: number,
): void {
  const over = countScope(st, settings, scope).over;
  st.breakers[scope] = { ...closedBreaker(now), armed: !over, by, reason: 'reset by hand' };
}

/** Dependencies that would wait on each other forever: the first cycle found, as keys, or null. */
export function dependencyCycle(deps: Record<string, string[]>): string[] | null {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (k: string): string[] | null => {
    if (state.get(k) === 'done') return null;
    if (state.get(k) === 'visiting') return [...stack.slice(stack.indexOf(k)), k];
    state.set(k, 'visiting');
    stack.push(k);
    for (const d of deps[k] ?? []) {
      const c = visit(d);
      if (c) return c;
    }
    stack.pop();
    state.set(k, 'done');
    return null;
  };
  for (const k of Object.keys(deps).sort()) {
    const c = visit(k);
    if (c) return c;
  }
  return null;
}

/** A silenced incident asks again at least this often (a silence can be expired early or edited)... */
export const SILENCE_RECHECK_MS = 60_000;
/** ...and not more often than this (clocks that disagree about a silence's end must not spin). */
export const SILENCE_RECHECK_MIN_MS = 5_000;

/**
 * When a silenced incident asks Alertmanager again: just after the silence ends (`endsAt`, ISO, from
 * Alertmanager), but at least every SILENCE_RECHECK_MS and never sooner than SILENCE_RECHECK_MIN_MS.
 */
export function silenceRecheckAt(now: number, endsAt: string | null | undefined): number {
  const ends = endsAt ? Date.parse(endsAt) : NaN;
  const wait = Number.isFinite(ends) ? ends + 1_000 - now : SILENCE_RECHECK_MS;
  return now + Math.min(SILENCE_RECHECK_MS, Math.max(SILENCE_RECHECK_MIN_MS, wait));
}
