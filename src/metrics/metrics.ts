// The product's Prometheus metrics (names are the contract). One Registry per process, owned
// by whoever builds it (the app or the worker), never prom-client's global registry.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Config } from '../config/config';
import { STATUS_VALUE, type Status } from '../policy/policy';

const ESCALATION_REASONS = [
  'SelfHealingExhausted',
  'ConsecutiveFailures',
  'HostUnreachable',
  'HostStateUnwritable',
  'ApprovalRequired',
];

export interface ServiceGaugeState {
  host: string;
  service: string;
  status: Status;
  phase: string;
  consecutiveFailures: number;
  /** Known when read from the workflow itself (not from the visibility index). */
  restartsLastHour?: number;
}

/** Supplies current state of every guarded service when /metrics is scraped. */
export type StateSource = () => Promise<ServiceGaugeState[]>;

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
  temporalUp: Gauge;
  /** Set the source the state gauges read at scrape time. */
  setStateSource(source: StateSource): void;
  /** Where there is no state source (a control worker on its own): a Temporal call made at scrape time. */
  setTemporalProbe(probe: () => Promise<unknown>): void;
  /** Pre-creates the labelled series of every configured service at 0, so increase() sees the first restart. */
  initServices(config: Config): void;
}

export function createMetrics(registry = new Registry()): SelfhealMetrics {
  let source: StateSource | null = null;
  let lastGood: ServiceGaugeState[] = [];

  const restarts = new Counter({
    name: 'selfhealing_restarts_total',
    help: 'Restarts performed by self-healing, by result of their verification.',
    labelNames: ['host', 'service', 'result'] as const,
    registers: [registry],
  });
  const escalations = new Counter({
    name: 'selfhealing_escalations_total',
    help: 'Escalations to a human, by reason (SelfHealingExhausted, ConsecutiveFailures, HostUnreachable, HostStateUnwritable, ApprovalRequired).',
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
        this.reset();
        for (const s of await states()) {
          const v = value(s);
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

  let temporalProbe: (() => Promise<unknown>) | null = null;
  const temporalUp = new Gauge({
    name: 'selfhealing_temporal_up',
    help: '1 when the last request to Temporal for state succeeded, else 0.',
    registers: [registry],
    async collect() {
      if (temporalProbe)
        this.set(
          await temporalProbe().then(
            () => 1,
            () => 0,
          ),
        );
    },
  });

  // One scrape runs every state gauge's collect(); they share a single state read.
  let inflight: Promise<ServiceGaugeState[]> | null = null;
  function states(): Promise<ServiceGaugeState[]> {
    if (!source) return Promise.resolve([]);
    if (!inflight) {
      const read = source;
      inflight = read()
        .then((s) => {
          lastGood = s;
          temporalUp.set(1);
          return s;
        })
        .catch(() => {
          temporalUp.set(0);
          return lastGood;
        })
        .finally(() => {
          setTimeout(() => (inflight = null), 1000).unref();
        });
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
    temporalUp,
    setStateSource(s) {
      source = s;
    },
    setTemporalProbe(p) {
      temporalProbe = p;
    },
    initServices(config) {
      for (const s of config.services) {
        for (const result of ['success', 'failure']) restarts.inc({ host: s.host, service: s.name, result }, 0);
        for (const reason of ESCALATION_REASONS) escalations.inc({ host: s.host, service: s.name, reason }, 0);
      }
    },
  };
  return metrics;
}
