// Activities of the control queue (selfheal-control): configuration lookups, the audit log and
// metrics, escalation delivery, and Prometheus checks. They run beside the workflow worker.
import { findService, type Config, type ManagerKind } from '../config/config';
import type { SelfhealMetrics } from '../metrics/metrics';
import type { Policy } from '../policy/policy';
import { AUDIT_EVENTS } from '../workflows/definitions';
import { AuditLog, type AuditRecord } from './audit';
import { createFleetActivities } from './fleet';
import { activityHeartbeat, activityLog, activitySleep } from './context';
import { deliverEscalation, type DeliveryResult, type EscalationPayload } from './escalation';
import { firingAlertsQuery, PrometheusClient } from './prometheus';

export interface ControlActivityDeps {
  config: Config;
  metrics?: SelfhealMetrics;
  audit?: AuditLog;
  prometheus?: PrometheusClient | null;
  /** Poll interval of waitForAlertClear. */
  pollIntervalMs?: number;
}

/** Connects the audit log's health to the metrics and the log; safe to call more than once. */
export function watchAudit(
  auditLog: AuditLog,
  metrics: SelfhealMetrics | undefined,
  report: (message: string, attrs: Record<string, unknown>) => void = (m, a) => activityLog().warn(m, a),
): void {
  auditLog.observe({
    onWritable(writable, error) {
      metrics?.auditWritable.set(writable ? 1 : 0);
      report(
        writable
          ? 'audit log writable again; held-back lines written'
          : 'audit log cannot be written; holding lines back and retrying (decisions go on)',
        { file: auditLog.file, ...(error ? { error: error.message } : {}) },
      );
    },
    onWriteFailure: () => metrics?.auditWriteFailures.inc(),
    onDropped: (n) => metrics?.auditDropped.inc(n),
    onBacklog: (n) => metrics?.auditBacklog.set(n),
  });
}

export type ResolvedService =
  | {
      configured: true;
      unit: string;
      manager: ManagerKind;
      policy: Policy;
      /** Fleet safety (optional: answers of workers from before it lack them). */
      dependsOn?: string[];
      answerTimeoutMs?: number;
    }
  | { configured: false; reason: string };

export interface AlertCheck {
  host: string;
  service: string;
  alertnames: string[];
}

export function createControlActivities(deps: ControlActivityDeps) {
  const { config, metrics } = deps;
  // A log handed in is watched by whoever made it (the process runtime); one made here, here.
  const auditLog = deps.audit ?? new AuditLog(config.audit.file);
  const seen = new RecentIds(AUDIT_IDS_REMEMBERED);
  if (!deps.audit) watchAudit(auditLog, metrics);
  const prometheus =
    deps.prometheus !== undefined
      ? deps.prometheus
      : config.prometheus.url
        ? new PrometheusClient(config.prometheus.url, config.prometheus.timeoutMs)
        : null;
  const pollMs = deps.pollIntervalMs ?? 5_000;

  const queryFor = (c: AlertCheck) =>
    firingAlertsQuery({
      host: c.host,
      service: c.service,
      alertnames: c.alertnames,
      ignoreAlertnames: config.alerts.ignoreAlertnames,
      serviceLabel: config.alerts.serviceLabel,
      hostLabel: config.alerts.hostLabel,
    });

  return {
    ...createFleetActivities(config),
    /** The current policy, unit and manager of a service, read at the start of each incident. */
    async resolveService(ref: { host: string; service: string }): Promise<ResolvedService> {
      const svc = findService(config, ref.host, ref.service);
      if (!svc) return { configured: false, reason: `${ref.service} on ${ref.host} is not in ${config.source}` };
      return {
        configured: true,
        unit: svc.unit,
        manager: svc.manager,
        policy: svc.policy,
        dependsOn: svc.dependsOn,
        answerTimeoutMs: config.fleet.answerTimeoutMs,
      };
    },

    /**
     * Counts one decision in the metrics and appends it to the audit log. Never fails and never
     * waits on a broken disk: the counters count what happened whether or not the line could be
     * written now (it is held back and written once the log is writable).
     */
    async audit(record: AuditRecord): Promise<{ written: boolean }> {
      if (record.id && !seen.add(record.id)) return { written: true };
      if (metrics) {
        metrics.auditEvents.inc({ event: record.event });
        if (record.event === AUDIT_EVENTS.attemptFinished && record.restarted && record.result) {
          metrics.restarts.inc({ host: record.host, service: record.service, result: record.result });
        }
        if (record.event === AUDIT_EVENTS.escalated && record.escalation) {
          metrics.escalations.inc({ host: record.host, service: record.service, reason: record.escalation });
        }
      }
      return { written: await auditLog.record(record) };
    },

    /** Delivers an escalation to every webhook; throws (and is retried) until all have taken it. */
    async escalate(payload: EscalationPayload): Promise<DeliveryResult> {
      const withLink: EscalationPayload = config.temporal.uiUrl
        ? {
            ...payload,
            temporalUi: `${config.temporal.uiUrl}/namespaces/${encodeURIComponent(config.temporal.namespace)}/workflows/${encodeURIComponent(payload.workflowId)}`,
          }
        : payload;
      if (config.escalation.webhooks.length === 0) {
        activityLog().warn('escalation has nowhere to go: no escalation.webhooks configured', {
          id: payload.id,
          event: payload.event,
        });
        return { delivered: [], refused: [] };
      }
      return deliverEscalation(config.escalation.webhooks, withLink, {
        onFailure: () => metrics?.escalationDeliveryFailures.inc({ event: payload.event }),
        onPermanentFailure: () => metrics?.escalationsRefused.inc({ event: payload.event }),
      });
    },

    /** Whether Prometheus still reports the incident's alert as firing; null when it cannot tell. */
    async alertStillFiring(check: AlertCheck): Promise<boolean | null> {
      if (!prometheus) return null;
      try {
        return (await prometheus.query(queryFor(check))).length > 0;
      } catch (err) {
        activityLog().warn('cannot ask Prometheus whether the alert still fires; relying on Alertmanager', {
          error: (err as Error).message,
        });
        return null;
      }
    },

    /** Verification by Prometheus: waits until the incident's alert no longer fires. */
    async waitForAlertClear(check: AlertCheck & { timeoutMs: number }): Promise<{ cleared: boolean; detail: string }> {
      if (!prometheus) return { cleared: true, detail: 'no prometheus.url configured; skipped' };
      const deadline = Date.now() + check.timeoutMs;
      let last: string;
      for (;;) {
        try {
          const firing = await prometheus.query(queryFor(check));
          if (firing.length === 0) return { cleared: true, detail: 'alert cleared in Prometheus' };
          last = `still firing: ${firing.map((f) => f.metric.alertname).join(', ')}`;
        } catch (err) {
          last = (err as Error).message;
        }
        if (Date.now() >= deadline) return { cleared: false, detail: last };
        activityHeartbeat(last);
        await activitySleep(Math.min(pollMs, Math.max(1, deadline - Date.now())));
      }
    },
  };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;

/** Decision ids remembered against a local activity run twice (a re-run follows within minutes). */
export const AUDIT_IDS_REMEMBERED = 10_000;

/** The last `cap` ids seen, oldest forgotten first. */
export class RecentIds {
  private readonly ids = new Set<string>();

  constructor(private readonly cap: number) {}

  /** False when the id was seen already. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.cap) this.ids.delete(this.ids.values().next().value as string);
    return true;
  }
}
