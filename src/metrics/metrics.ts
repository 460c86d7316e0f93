// The product's Prometheus metrics (names are the contract). One Registry per process, owned
// by whoever builds it (the app or the worker), never prom-client's global registry.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Config } from '../config/config';
import { STATUS_VALUE, type Status } from '../policy/policy';
import { ESCALATION_EVENTS } from '../workflows/definitions';

export interface ServiceGaugeState {
  host: string;
  service: string;
  status: Status;
  phase: string;
  consecutiveFailures: number;
  /** Known when read from the workflow itself (not from the visibility index). */
  restartsLastHour?: number;
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

export interface MetricsOptions {
  /** Past this age a service's last good state is no longer exported (default 2 min). */
  maxStateAgeMs?: number;
  /** One read serves every gauge of a scrape, and scrapes within this window (default 1 s). */
  readCacheMs?: number;
  now?: () => number;
}

const isReadError = (r: ServiceStateRead): r is ServiceStateReadError => 'error' in r;

export interface SelfhealMetrics {
  registry: Registry;
  restarts: Counter<'host' | 'service' | 'result'>;
  escalations: Counter<'host' | 'service' | 'reason'>;
  alertsReceived: Counter<'status'>;
  alertsIgnored: Counter<'reason'>;
  webhookRequests: Counter<'code'>;
  httpRequests: Counter<'method' | 'route' | 'code'>;
  httpDuration: Histogram<'method' | 'route'>;
  auditEvents: Counter<'event'>;
  escalationDeliveryFailures: Counter<'event'>;
  escalationsRefused: Counter<'event'>;
  auditWriteFailures: Counter;
  auditWritable: Gauge;
  auditBacklog: Gauge;
  auditDropped: Counter;
  temporalUp: Gauge;
  /** Set the source the state gauges read at scrape time. */
  setStateSource(source: StateSource): void;
  /** Where there is no state source (a control worker on its own): a Temporal call made at scrape time. */
  setTemporalProbe(probe: () => Promise<unknown>): void;
  /** Pre-creates the labelled series of every configured service at 0, so increase() sees the first restart. */
  initServices(config: Config): void;
}

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

export function createMetrics(registry = new Registry(), opts: MetricsOptions = {}): SelfhealMetrics {
  const maxStateAgeMs = opts.maxStateAgeMs ?? DEFAULT_MAX_STATE_AGE_MS;
  const readCacheMs = opts.readCacheMs ?? 1_000;
  const now = opts.now ?? Date.now;
  let source: StateSource | null = null;
  /** Configured services (host/service), so a failed whole read still knows whom it failed for. */
  const configured = new Map<string, { host: string; service: string }>();
  /** The last good state of each service and when it was read. */
  const lastGood = new Map<string, { state: ServiceGaugeState; readAt: number }>();
  const keyOf = (s: { host: string; service: string }) => `${s.host}\u0000${s.service}`;

  const restarts = new Counter({
    name: 'selfhealing_restarts_total',
    help: 'Restarts performed by self-healing, by result of their verification.',
    labelNames: ['host', 'service', 'result'] as const,
    registers: [registry],
  });
  const escalations = new Counter({
    name: 'selfhealing_escalations_total',
    help: `Escalations to a human, by reason (${ESCALATION_EVENTS.join(', ')}).`,
    labelNames: ['host', 'service', 'reason'] as const,
    registers: [registry],
  });

  // The state gauges are computed at scrape time from the durable workflow state, so a restarted
  // process reports the truth on its first scrape instead of zeros. `undefined` leaves a service out.
  const stateGauge = (name: string, help: string, value: (s: ServiceGaugeState) => number | undefined) =>
    new Gauge({
      name,
      help: `${help} (from the workflow state).`,
      labelNames: ['host', 'service'] as const,
      registers: [registry],
      async collect() {
        const snapshot = await states();
        this.reset();
        for (const s of snapshot) {
          const v = s.state ? value(s.state) : undefined;
          if (v !== undefined) this.set({ host: s.host, service: s.service }, v);
        }
      },
    });
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

  // Whether each exported state is current: a read that fails for one service marks only that one.
  new Gauge({
    name: 'selfhealing_state_stale',
    help: "1 when this scrape could not read the service's workflow state (the state gauges show the last good read, or nothing), else 0.",
    labelNames: ['host', 'service'] as const,
    registers: [registry],
    async collect() {
      const snapshot = await states();
      this.reset();
      for (const s of snapshot) this.set({ host: s.host, service: s.service }, s.stale ? 1 : 0);
    },
  });
  new Gauge({
    name: 'selfhealing_state_age_seconds',
    help: `Seconds since the service's workflow state was last read successfully (its state gauges disappear past ${maxStateAgeMs / 1000} s).`,
    labelNames: ['host', 'service'] as const,
    registers: [registry],
    async collect() {
      const snapshot = await states();
      this.reset();
      for (const s of snapshot) {
        if (s.ageSeconds !== null) this.set({ host: s.host, service: s.service }, s.ageSeconds);
      }
    },
  });
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
  const guarded = new Gauge({
    name: 'selfhealing_service_guarded',
    help: 'Always 1 for every configured service, from the config alone (whatever Temporal answers).',
    labelNames: ['host', 'service'] as const,
    registers: [registry],
  });

  let temporalProbe: (() => Promise<unknown>) | null = null;
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

  const auditWritable = new Gauge({
    name: 'selfhealing_audit_log_writable',
    help: '1 while the audit log can be written, 0 while lines are being held back.',
    registers: [registry],
  });
  auditWritable.set(1);

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

  const metrics: SelfhealMetrics = {
    registry,
    restarts,
    escalations,
    alertsReceived: new Counter({
      name: 'selfhealing_alerts_received_total',
      help: 'Alerts received from Alertmanager or `selfheal poll`, by alert status.',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    alertsIgnored: new Counter({
      name: 'selfhealing_alerts_ignored_total',
      help: 'Alerts acknowledged but not acted on, by reason (unknown-service, invalid-name, ignored-alertname, missing-labels).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    webhookRequests: new Counter({
      name: 'selfhealing_webhook_requests_total',
      help: 'Alertmanager webhook requests, by HTTP status code.',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    httpRequests: new Counter({
      name: 'selfhealing_http_requests_total',
      help: 'HTTP requests served by the API, by route template and status code.',
      labelNames: ['method', 'route', 'code'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'selfhealing_http_request_duration_seconds',
      help: 'HTTP request latency of the API, by route template.',
      labelNames: ['method', 'route'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    auditEvents: new Counter({
      name: 'selfhealing_audit_events_total',
      help: 'Decisions written to the audit log, by event.',
      labelNames: ['event'] as const,
      registers: [registry],
    }),
    escalationDeliveryFailures: new Counter({
      name: 'selfhealing_escalation_delivery_failures_total',
      help: 'Failed deliveries of an escalation to a webhook (each is retried until delivered).',
      labelNames: ['event'] as const,
      registers: [registry],
    }),
    escalationsRefused: new Counter({
      name: 'selfhealing_escalations_refused_total',
      help: 'Escalations an escalation webhook refused for good (HTTP 4xx other than 408/429); not retried.',
      labelNames: ['event'] as const,
      registers: [registry],
    }),
    auditWriteFailures: new Counter({
      name: 'selfhealing_audit_write_failures_total',
      help: 'Audit log lines that could not be written when they were recorded (held back and retried).',
      registers: [registry],
    }),
    auditWritable: auditWritable,
    auditBacklog: new Gauge({
      name: 'selfhealing_audit_backlog_lines',
      help: 'Audit log lines held back in memory until the log is writable again.',
      registers: [registry],
    }),
    auditDropped: new Counter({
      name: 'selfhealing_audit_dropped_lines_total',
      help: 'Held-back audit log lines dropped because the backlog was full (they remain in Temporal history).',
      registers: [registry],
    }),
    temporalUp,
    setStateSource(s) {
      source = s;
    },
    setTemporalProbe(p) {
      temporalProbe = p;
    },
    initServices(config) {
      for (const s of config.services) {
        configured.set(keyOf({ host: s.host, service: s.name }), { host: s.host, service: s.name });
        guarded.set({ host: s.host, service: s.name }, 1);
        for (const result of ['success', 'failure']) restarts.inc({ host: s.host, service: s.name, result }, 0);
        for (const reason of ESCALATION_EVENTS) escalations.inc({ host: s.host, service: s.name, reason }, 0);
      }
    },
  };
  return metrics;
}
