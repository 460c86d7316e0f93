// The product's Prometheus metrics (names are the contract). One Registry per process, owned
// by whoever builds it (the app or the worker), never prom-client's global registry.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Config } from '../config/config';
import { ESCALATION_EVENTS } from '../workflows/definitions';
import { createFleetGauges, type FleetSource } from './fleet-gauges';
import { createStateGauges, type StateGaugeOptions, type StateSource } from './state-gauges';

export {
  type ServiceGaugeState,
  type ServiceStateRead,
  type ServiceStateReadError,
  type StateReadErrorReason,
  type StateSource,
} from './state-gauges';

export type MetricsOptions = StateGaugeOptions;

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
  embeddedTemporalRestarts: Counter;
  /** Set the source the state gauges read at scrape time. */
  setStateSource(source: StateSource): void;
  /** Set where the fleet-safety gauges read the coordinator at scrape time. */
  setFleetSource(source: FleetSource): void;
  /** Where there is no state source (a control worker on its own): a Temporal call made at scrape time. */
  setTemporalProbe(probe: () => Promise<unknown>): void;
  /** Pre-creates the labelled series of every configured service at 0, so increase() sees the first restart. */
  initServices(config: Config): void;
}

export function createMetrics(registry = new Registry(), opts: MetricsOptions = {}): SelfhealMetrics {
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
  const state = createStateGauges(registry, opts);
  const fleet = createFleetGauges(registry);
  const guarded = new Gauge({
    name: 'selfhealing_service_guarded',
    help: 'Always 1 for every configured service, from the config alone (whatever Temporal answers).',
    labelNames: ['host', 'service'] as const,
    registers: [registry],
  });
  const auditWritable = new Gauge({
    name: 'selfhealing_audit_log_writable',
    help: '1 while the audit log can be written, 0 while lines are being held back.',
    registers: [registry],
  });
  auditWritable.set(1);

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
    temporalUp: state.temporalUp,
    embeddedTemporalRestarts: new Counter({
      name: 'selfhealing_embedded_temporal_restarts_total',
      help: "Restarts of `selfheal start`'s embedded Temporal dev server after it died.",
      registers: [registry],
    }),
    setStateSource: state.setSource,
    setFleetSource: fleet.setSource,
    setTemporalProbe: state.setProbe,
    initServices(config) {
      for (const s of config.services) {
        state.addService({ host: s.host, service: s.name });
        guarded.set({ host: s.host, service: s.name }, 1);
        for (const result of ['success', 'failure']) restarts.inc({ host: s.host, service: s.name, result }, 0);
        for (const reason of ESCALATION_EVENTS) escalations.inc({ host: s.host, service: s.name, reason }, 0);
      }
    },
  };
  return metrics;
}
