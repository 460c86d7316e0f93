// From alerts (Alertmanager webhook or Prometheus' alerts API) to workflow signals.
// planAlerts is pure: label mapping, validation, allowlist, and one signal per service and status.
// deliverPlan sends them and resolves only once Temporal has accepted every one.
import type { Static } from '@sinclair/typebox';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { NotActedOnSchema, WebhookAlert } from '../api/schemas/webhook';
import { findService, type Config } from '../config/config';
import { hostNameProblem, unitNameProblem } from '../config/names';
import {
  alertFiringSignal,
  alertResolvedSignal,
  MAX_ALERT_ID_LENGTH,
  MAX_ALERT_NAME_LENGTH,
  workflowIdFor,
  type AlertRef,
  type ServiceWorkflowInput,
} from '../workflows/definitions';
import { callTemporal } from './call';
import { Pool } from './pool';
import { signalWithStartService } from './signals';

/** What intake reads of an alert (Alertmanager's webhook, or Prometheus' alerts API as `selfheal poll` reads it). */
export type IncomingAlert = Pick<WebhookAlert, 'status' | 'labels' | 'annotations' | 'fingerprint'>;

export interface PlannedSignal {
  host: string;
  service: string;
  status: 'firing' | 'resolved';
  alertnames: string[];
  /** Each alert by its identity: several alerts of one name (e.g. reason down / stalled) are distinct. */
  alerts: AlertRef[];
  summary?: string;
  workflowId: string;
}

/** Alerts per signal: a larger group is sent as several signals (payloads stay small). */
export const MAX_ALERTS_PER_SIGNAL = 200;

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = 0xffffffffffffffffn;
const utf8 = new TextEncoder();

/**
 * Prometheus' and Alertmanager's fingerprint of a label set (model.LabelSet.Fingerprint: FNV-1a
 * 64 over the sorted names and values, each followed by the byte 255), as 16 hex digits. An alert
 * without a `fingerprint` field gets the identity Alertmanager would have given it.
 */
export function labelsFingerprint(labels: Record<string, string>): string {
  let h = FNV_OFFSET;
  const add = (bytes: Uint8Array) => {
    for (const b of bytes) h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK64;
  };
  const sep = Uint8Array.of(255);
  for (const name of Object.keys(labels).sort()) {
    add(utf8.encode(name));
    add(sep);
    add(utf8.encode(labels[name]));
    add(sep);
  }
  return h.toString(16).padStart(16, '0');
}

/** An alert's identity: Alertmanager's fingerprint, else the fingerprint of its full label set. */
export function alertIdentity(a: Pick<IncomingAlert, 'labels' | 'fingerprint'>): string {
  const fp = typeof a.fingerprint === 'string' ? a.fingerprint.trim() : '';
  return fp ? fp.slice(0, MAX_ALERT_ID_LENGTH) : labelsFingerprint(a.labels);
}

export type NotActedOn = Static<typeof NotActedOnSchema>;

export type IgnoreReason = 'ignored-alertname' | 'missing-labels' | 'unknown-service';

export interface IntakePlan {
  signals: PlannedSignal[];
  ignored: (NotActedOn & { kind: IgnoreReason })[];
  rejected: (NotActedOn & { kind: 'invalid-name' })[];
}

/** `instance` without its port: `web-1:9100` → `web-1`, `[::1]:9100` → `::1`. */
export function hostFromInstance(instance: string | undefined): string | null {
  if (!instance) return null;
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(instance);
  if (v6) return v6[1];
  const i = instance.lastIndexOf(':');
  return i > 0 && /^\d+$/.test(instance.slice(i + 1)) ? instance.slice(0, i) : instance;
}

const clip = (s: string | undefined, n: number) => (s == null ? undefined : s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function planAlerts(config: Config, alerts: readonly IncomingAlert[]): IntakePlan {
  const { serviceLabel, hostLabel, ignoreAlertnames } = config.alerts;
  const plan: IntakePlan = { signals: [], ignored: [], rejected: [] };
  const groups = new Map<string, PlannedSignal>();
  const seen = new Set<string>();
  for (const a of alerts) {
    const alertname = a.labels.alertname ?? null;
    const service = a.labels[serviceLabel] ?? null;
    const host = a.labels[hostLabel] || hostFromInstance(a.labels.instance);
    const base = { alertname, host, service, status: a.status };
    if (alertname && ignoreAlertnames.includes(alertname)) {
      plan.ignored.push({ ...base, kind: 'ignored-alertname', reason: `${alertname} is about self-healing itself` });
      continue;
    }
    if (!service || !host) {
      const missing = [!service && `"${serviceLabel}"`, !host && `"${hostLabel}" (or "instance")`].filter(Boolean);
      plan.ignored.push({ ...base, kind: 'missing-labels', reason: `no ${missing.join(' or ')} label` });
      continue;
    }
    const unitProblem = unitNameProblem(service);
    const hostProblem = hostNameProblem(host);
    if (unitProblem || hostProblem) {
      plan.rejected.push({
        ...base,
        kind: 'invalid-name',
        reason: unitProblem ? `invalid service name: ${unitProblem}` : `invalid host name: ${hostProblem}`,
      });
      continue;
    }
    if (!findService(config, host, service)) {
      plan.ignored.push({
        ...base,
        kind: 'unknown-service',
        reason: `${service} on ${host} is not a configured service`,
      });
      continue;
    }
    const key = `${host}\u0000${service}\u0000${a.status}`;
    const id = alertIdentity(a);
    const repeated = seen.has(`${key}\u0000${id}`);
    seen.add(`${key}\u0000${id}`);
    let g = groups.get(key);
    if (!g || (!repeated && g.alerts.length >= MAX_ALERTS_PER_SIGNAL)) {
      g = { host, service, status: a.status, alertnames: [], alerts: [], workflowId: workflowIdFor(host, service) };
      groups.set(key, g);
      plan.signals.push(g);
    }
    const name = (alertname || 'unnamed').slice(0, MAX_ALERT_NAME_LENGTH);
    // An alert repeated in one request is one alert (its annotations still count below).
    if (!repeated) g.alerts.push({ id, name });
    if (!g.alertnames.includes(name)) g.alertnames.push(name);
    if (a.status === 'firing') g.summary ??= clip(a.annotations?.summary ?? a.annotations?.description, 200);
  }
  for (const g of plan.signals) g.alertnames.sort();
  return plan;
}

export interface DeliveredSignal extends PlannedSignal {
  note?: string;
}

/**
 * Sends every planned signal (resolved ones without starting a workflow), all under one deadline
 * (`timeoutMs`, none by default) and through `pool` (16 at a time by default; a pool shared by a
 * process's requests caps them all). Throws on the first failure, so callers answer 5xx and the
 * sender retries: repeated signals are harmless by design. An unreachable Temporal is ActionError('unavailable').
 *
 * `accepted`: indexes into `signals` already handled by an earlier attempt of the same delivery:
 * not sent again. Every signal handled now is added to it (the call settles only after every signal
 * under way has: the deadline is each call's own gRPC deadline).
 */
export async function deliverPlan(
  client: Client,
  config: Config,
  signals: readonly PlannedSignal[],
  opts: {
    pool?: Pool;
    timeoutMs?: number | null;
    input?: Pick<ServiceWorkflowInput, 'fleetReports'>;
    accepted?: Set<number>;
  } = {},
): Promise<DeliveredSignal[]> {
  const pool = opts.pool ?? new Pool(16);
  const accepted = opts.accepted;
  const deliverAt = async (i: number): Promise<DeliveredSignal> => {
    if (accepted?.has(i)) return { ...signals[i], note: 'handled during an earlier attempt of this delivery' };
    const d = await deliver(signals[i]);
    accepted?.add(i);
    return d;
  };
  const deliver = async (s: PlannedSignal): Promise<DeliveredSignal> => {
    if (s.status === 'firing') {
      await signalWithStartService(
        client,
        config,
        s.host,
        s.service,
        alertFiringSignal,
        { alertnames: s.alertnames, alerts: s.alerts, summary: s.summary },
        opts.input,
      );
      return s;
    }
    try {
      await client.workflow
        .getHandle(s.workflowId)
        .signal(alertResolvedSignal, { alertnames: s.alertnames, alerts: s.alerts });
      return s;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      return { ...s, note: 'no workflow for this service: nothing to cancel' };
    }
  };
  return callTemporal(client, opts.timeoutMs ?? null, () =>
    pool.map(
      signals.map((_, i) => i),
      deliverAt,
      16,
    ),
  );
}
