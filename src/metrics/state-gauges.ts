// The per-service state gauges, computed at scrape time from the durable workflow state, so a
// restarted process reports the truth on its first scrape instead of zeros. One read of the state
// source serves every gauge of a scrape; a service whose read fails is marked stale and keeps its
// last good state for a while.
import { Counter, Gauge, type Registry } from 'prom-client';
import { HOLD_REASONS } from '../policy/fleet';
import { STATUS_VALUE, type Status } from '../policy/policy';

export interface ServiceGaugeState {
  host: string;
  service: string;
  status: Status;
  phase: string;
  consecutiveFailures: number;
  /** Known when read from the workflow itself (not from the visibility index). */
  restartsLastHour?: number;
  /** Why it waits in phase `held` (`unknown` past HELD_REASON_QUERY_LIMIT held incidents on the index path). */
  heldReason?: string | null;
}

/** A service whose state could not be read this time; `error` is a low-cardinality reason code. */
export interface ServiceStateReadError {
  host: string;
  service: string;
  error: StateReadErrorReason;
}

/** Why a state read failed: Temporal did not answer in time or at all, or the workflow could not answer. */
export type StateReadErrorReason = 'unavailable' | 'query-failed' | 'error';

export type ServiceStateRead = ServiceGaugeState | ServiceStateReadError;

/**
 * Supplies the current state of every guarded service when /metrics is scraped, one entry per service.
 * It rejects only when nothing could be read at all (then every service counts as failed, `unavailable`).
 */
export type StateSource = () => Promise<ServiceStateRead[]>;

/** How long a service's last good state is still exported after its reads start failing. */
export const DEFAULT_MAX_STATE_AGE_MS = 120_000;

export interface StateGaugeOptions {
  /** Past this age a service's last good state is no longer exported (default 2 min). */
  maxStateAgeMs?: number;
  /** One read serves every gauge of a scrape, and scrapes within this window (default 1 s). */
  readCacheMs?: number;
  now?: () => number;
}

const isReadError = (r: ServiceStateRead): r is ServiceStateReadError => 'error' in r;

/** What one scrape exports for one service. */
interface ServiceSnapshot {
  host: string;
  service: string;
  /** The state to export: fresh, or the last good one within the bound; null when there is none. */
  state: ServiceGaugeState | null;
  /** This scrape's read of the service failed. */
  stale: boolean;
  /** Seconds since the last good read; null when it was never read. */
  ageSeconds: number | null;
}

type Key = { host: string; service: string };
const keyOf = (s: Key) => `${s.host}\u0000${s.service}`;

export function createStateGauges(registry: Registry, opts: StateGaugeOptions = {}) {
  const maxStateAgeMs = opts.maxStateAgeMs ?? DEFAULT_MAX_STATE_AGE_MS;
  const readCacheMs = opts.readCacheMs ?? 1_000;
  const now = opts.now ?? Date.now;
  let source: StateSource | null = null;
  let temporalProbe: (() => Promise<unknown>) | null = null;
  /** Configured services, so a failed whole read still knows whom it failed for. */
  const configured = new Map<string, Key>();
  /** The last good state of each service and when it was read. */
  const lastGood = new Map<string, { state: ServiceGaugeState; readAt: number }>();

  /** A gauge per service from this scrape's snapshot; `undefined` or null leaves a service out. */
  const snapshotGauge = (name: string, help: string, value: (s: ServiceSnapshot) => number | null | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['host', 'service'] as const,
      registers: [registry],
      async collect() {
        const snapshot = await states();
        this.reset();
        for (const s of snapshot) {
          const v = value(s);
          if (v != null) this.set({ host: s.host, service: s.service }, v);
        }
      },
    });
  const stateGauge = (name: string, help: string, value: (s: ServiceGaugeState) => number | undefined) =>
    snapshotGauge(name, `${help} (from the workflow state).`, (s) => (s.state ? value(s.state) : undefined));

  stateGauge(
    'selfhealing_consecutive_failures',
    'Consecutive failed remediation attempts of the service',
    (s) => s.consecutiveFailures,
  );
  stateGauge(
    'selfhealing_service_status',
    'Self-healing status of the service: 0 OK, 1 HEALING, 2 CRITICAL',
    (s) => STATUS_VALUE[s.status],
  );
  stateGauge(
    'selfhealing_budget_exhausted',
    '1 while the service has used up its hourly restart budget and self-healing waits',
    (s) => (s.phase === 'exhausted' ? 1 : 0),
  );
  stateGauge(
    'selfhealing_restarts_last_hour',
    'Restarts of the service in the sliding hour the budget counts',
    (s) => s.restartsLastHour,
  );
  new Gauge({
    name: 'selfhealing_held_incidents',
    help: 'Incidents waiting in phase held (fleet safety), by reason (breaker, breaker-unavailable, dependency, silenced, flapping, concurrency).',
    labelNames: ['reason'] as const,
    registers: [registry],
    async collect() {
      const snapshot = await states();
      this.reset();
      for (const r of HOLD_REASONS) this.set({ reason: r }, 0);
      for (const s of snapshot) if (s.state?.heldReason) this.inc({ reason: s.state.heldReason });
    },
  });
  // Whether each exported state is current: a read that fails for one service marks only that one.
  snapshotGauge(
    'selfhealing_state_stale',
    "1 when this scrape could not read the service's workflow state (the state gauges show the last good read, or nothing), else 0.",
    (s) => (s.stale ? 1 : 0),
  );
  snapshotGauge(
    'selfhealing_state_age_seconds',
    `Seconds since the service's workflow state was last read successfully (its state gauges disappear past ${maxStateAgeMs / 1000} s).`,
    (s) => s.ageSeconds,
  );
  const readErrors = new Counter({
    name: 'selfhealing_state_read_errors_total',
    help: "Failed reads of a service's workflow state at scrape time, by reason (unavailable, query-failed, error).",
    labelNames: ['host', 'service', 'reason'] as const,
    registers: [registry],
    // Counted by the read this scrape runs.
    async collect() {
      await states();
    },
  });
  const temporalUp = new Gauge({
    name: 'selfhealing_temporal_up',
    help: '1 when the last request to Temporal for state succeeded, else 0.',
    registers: [registry],
    async collect() {
      // A standalone control worker asks Temporal itself; the API learns it from the state read.
      if (temporalProbe)
        this.set(
          await temporalProbe().then(
            () => 1,
            () => 0,
          ),
        );
      else await states();
    },
  });

  /** One read: remember what succeeded, count what failed, and decide what each service exports. */
  async function readOnce(read: StateSource): Promise<ServiceSnapshot[]> {
    let reads: ServiceStateRead[];
    try {
      reads = await read();
    } catch {
      const known = new Map(configured);
      for (const [k, v] of lastGood) if (!known.has(k)) known.set(k, { host: v.state.host, service: v.state.service });
      reads = [...known.values()].map((s) => ({ ...s, error: 'unavailable' as const }));
    }
    const at = now();
    const failed = reads.filter(isReadError);
    // Reachable unless nothing answered: one workflow failing its query says nothing about Temporal.
    temporalUp.set(
      reads.length > 0 && failed.length === reads.length && failed.every((f) => f.error === 'unavailable') ? 0 : 1,
    );
    const out: ServiceSnapshot[] = [];
    for (const r of reads) {
      const key = keyOf(r);
      if (!isReadError(r)) {
        lastGood.set(key, { state: r, readAt: at });
        out.push({ host: r.host, service: r.service, state: r, stale: false, ageSeconds: 0 });
        continue;
      }
      readErrors.inc({ host: r.host, service: r.service, reason: r.error });
      const last = lastGood.get(key);
      const ageMs = last ? at - last.readAt : null;
      out.push({
        host: r.host,
        service: r.service,
        state: last && ageMs! <= maxStateAgeMs ? last.state : null,
        stale: true,
        ageSeconds: ageMs === null ? null : Math.round(ageMs / 1000),
      });
    }
    return out;
  }

  // One scrape runs every state gauge's collect(); they share a single state read.
  let inflight: Promise<ServiceSnapshot[]> | null = null;
  function states(): Promise<ServiceSnapshot[]> {
    if (!source) return Promise.resolve([]);
    if (!inflight) {
      const current = readOnce(source).finally(() => {
        if (readCacheMs <= 0) inflight = null;
        else setTimeout(() => (inflight === current ? (inflight = null) : undefined), readCacheMs).unref();
      });
      inflight = current;
    }
    return inflight;
  }

  return {
    temporalUp,
    setSource(s: StateSource) {
      source = s;
    },
    setProbe(p: () => Promise<unknown>) {
      temporalProbe = p;
    },
    /** A configured service: counted as failed when a whole read fails. */
    addService(s: Key) {
      configured.set(keyOf(s), s);
    },
  };
}
