// Admission to a restart slot, and the slots' life: which restarts may start now, given the
// breakers, dependencies and concurrency limits of src/policy/fleet.ts. Pure, like the rest of the policy.
import {
  type AdmissionRequest,
  type BreakerEvent,
  closedBreaker,
  FLEET_SCOPE,
  type FleetSettings,
  type FleetState,
  type HoldReason,
  hostScope,
  type Lease,
  serviceKey,
} from './fleet';

export type Admission = { kind: 'grant'; trialFor: string[] } | { kind: 'hold'; reason: HoldReason; detail: string };

const inFlight = (st: FleetState, host?: string) =>
  Object.values(st.leases).filter((l) => host == null || l.host === host).length;

/** Whether a restart may start now; it does not change the state (see `grant`). */
export function admission(st: FleetState, settings: FleetSettings, r: AdmissionRequest): Admission {
  const key = serviceKey(r.host, r.service);
  const held = st.leases[key];
  if (held && held.incidentId === r.incidentId) return { kind: 'grant', trialFor: held.trialFor };
  if (!r.approved) {
    const down = r.dependsOn.filter((d) => d !== key && st.incidents[d]);
    if (down.length) return { kind: 'hold', reason: 'dependency', detail: `waiting for ${down.join(', ')}` };
  }
  const trialFor: string[] = [];
  for (const scope of [FLEET_SCOPE, hostScope(r.host)]) {
    const b = st.breakers[scope];
    if (!b || b.state === 'closed' || r.approved) continue;
    if (b.state === 'half-open' && b.trial == null) trialFor.push(scope);
    else {
      const what = b.state === 'open' ? 'open' : 'half-open, its one trial restart is in progress';
      return { kind: 'hold', reason: 'breaker', detail: `breaker ${scope} is ${what}` };
    }
  }
  const fleetN = inFlight(st);
  if (fleetN >= settings.maxRestartsInFlight) {
    return {
      kind: 'hold',
      reason: 'concurrency',
      detail: `${fleetN} restarts in flight fleet-wide (limit ${settings.maxRestartsInFlight})`,
    };
  }
  const hostN = inFlight(st, r.host);
  if (hostN >= settings.maxRestartsInFlightPerHost) {
    return {
      kind: 'hold',
      reason: 'concurrency',
      detail: `${hostN} restarts in flight on ${r.host} (limit ${settings.maxRestartsInFlightPerHost})`,
    };
  }
  return { kind: 'grant', trialFor };
}

/** Records a granted restart slot (and the trial it is, if any); the waiter, if any, goes. */
export function grant(
  st: FleetState,
  settings: FleetSettings,
  r: AdmissionRequest,
  trialFor: string[],
  now: number,
): Lease {
  const key = serviceKey(r.host, r.service);
  const lease: Lease = {
    host: r.host,
    service: r.service,
    incidentId: r.incidentId,
    grantedAt: now,
    expiresAt: now + settings.leaseMs,
    trialFor,
    approved: r.approved,
  };
  st.leases[key] = lease;
  for (const scope of trialFor) st.breakers[scope].trial = key;
  delete st.waiters[key];
  return lease;
}

export type ReleaseResult = 'verified' | 'failed' | 'not-used';

/** A restart slot comes back; a trial's result closes or reopens its breakers. */
export function release(st: FleetState, key: string, result: ReleaseResult, now: number): BreakerEvent[] {
  const lease = st.leases[key];
  if (!lease) return [];
  delete st.leases[key];
  const events: BreakerEvent[] = [];
  for (const scope of lease.trialFor) {
    const b = st.breakers[scope];
    if (!b || b.state !== 'half-open' || b.trial !== key) continue;
    if (result === 'verified') {
      Object.assign(b, closedBreaker(now));
      events.push({ kind: 'closed', scope, reason: `trial restart of ${key} verified` });
    } else if (result === 'failed') {
      Object.assign(b, { state: 'open', since: now, quietSince: null, trial: null });
      b.reason = `trial restart of ${key} failed`;
      events.push({ kind: 'reopened', scope, reason: b.reason });
    } else b.trial = null;
  }
  return events;
}

/** Slots whose holder never released them (a crashed entity, a lost signal) expire; a lost trial counts as failed. */
export function expireLeases(st: FleetState, now: number): BreakerEvent[] {
  const events: BreakerEvent[] = [];
  for (const [key, l] of Object.entries(st.leases))
    if (l.expiresAt <= now) events.push(...release(st, key, 'failed', now));
  return events;
}

/** An incident opened or closed (a closed incident also gives back its slot and its place in the queue). */
export function incidentOpened(st: FleetState, host: string, service: string, now: number): void {
  st.incidents[serviceKey(host, service)] ??= { host, service, since: now };
}

export function incidentClosed(st: FleetState, host: string, service: string, now: number): BreakerEvent[] {
  const key = serviceKey(host, service);
  delete st.incidents[key];
  delete st.waiters[key];
  return release(st, key, 'not-used', now);
}

/** The earliest time a step could change something by itself (quiet period end, a lease expiring). */
export function nextDue(st: FleetState, settings: FleetSettings): number | null {
  const times: number[] = Object.values(st.leases).map((l) => l.expiresAt);
  for (const b of Object.values(st.breakers)) {
    if (b.state === 'open' && b.quietSince != null && !b.manual)
      times.push(b.quietSince + settings.breaker.quietPeriodMs);
  }
  return times.length ? Math.min(...times) : null;
}
