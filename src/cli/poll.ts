// `selfheal poll`: the no-Alertmanager option. One pass over Prometheus' firing alerts, feeding the
// same workflows as the webhook. Idempotent: it signals only what changed since the workflows last
// heard, so running it twice in a row sends nothing the second time.
import type { Client } from '@temporalio/client';
import { PrometheusClient } from '../activities/prometheus';
import { ServiceActions } from '../client/actions';
import {
  deliverPlan,
  planAlerts,
  type IncomingAlert,
  type NotActedOn,
  type PlannedSignal,
} from '../client/alert-intake';
import type { Config } from '../config/config';
import type { AlertRef } from '../workflows/definitions';

export interface PollReport {
  firingAlerts: number;
  signalled: PlannedSignal[];
  unchanged: number;
  ignored: number;
  rejected: number;
  /** Every firing alert not acted on, with the reason (malformed ones first, then rejected, then ignored). */
  notActedOn: NotActedOn[];
  notes: string[];
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Keeps the string-valued entries of an object (annotations are advisory: the rest is dropped). */
function strings(x: unknown): Record<string, string> | undefined {
  if (!isRecord(x)) return undefined;
  return Object.fromEntries(Object.entries(x).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/**
 * A firing alert from Prometheus' API as intake reads it, or why it cannot be read. Prometheus itself
 * always sends string labels; anything else (a proxy, another implementation) is refused, not guessed at.
 */
function readAlert(a: Record<string, unknown>): IncomingAlert | string {
  if (!isRecord(a.labels)) return 'its labels are not an object';
  const bad = Object.entries(a.labels).find(([, v]) => typeof v !== 'string');
  if (bad) return `label ${JSON.stringify(bad[0])} is not a string`;
  return {
    status: 'firing',
    labels: a.labels as Record<string, string>,
    annotations: strings(a.annotations),
  };
}

export async function pollOnce(
  client: Client,
  config: Config,
  opts: { prometheus?: PrometheusClient; dryRun?: boolean } = {},
): Promise<PollReport> {
  if (!config.prometheus.url && !opts.prometheus) {
    throw new Error('prometheus.url is not set in the config: `selfheal poll` reads alerts from Prometheus');
  }
  const prom = opts.prometheus ?? new PrometheusClient(config.prometheus.url!, config.prometheus.timeoutMs);
  const firing = (await prom.alerts()).filter((a): a is Record<string, unknown> => isRecord(a) && a.state === 'firing');
  const readable: IncomingAlert[] = [];
  const malformed: NotActedOn[] = [];
  for (const a of firing) {
    const read = readAlert(a);
    if (typeof read !== 'string') readable.push(read);
    else {
      const labels = isRecord(a.labels) ? a.labels : {};
      const label = (k: string) => (typeof labels[k] === 'string' ? (labels[k] as string) : null);
      malformed.push({
        alertname: label('alertname'),
        host: label(config.alerts.hostLabel),
        service: label(config.alerts.serviceLabel),
        status: 'firing',
        reason: `malformed alert from Prometheus: ${read}`,
      });
    }
  }
  const plan = planAlerts(config, readable);
  // Keyed by workflow id: which alerts (by identity) each workflow believes fire, and which fire now.
  // A service whose state cannot be read is left out: its firing alerts are sent (harmless if known),
  // its resolves wait for a pass that can read what it believes is firing.
  const known = new Map<string, { host: string; service: string; firing: AlertRef[] }>();
  const notes: string[] = [];
  const reads = await new ServiceActions(client, config, 10_000).states();
  for (const { svc, state, error } of reads) {
    if (error) notes.push(`${svc.name} on ${svc.host}: could not read its state (${error.message.split('\n')[0]})`);
    else if (state) known.set(state.workflowId, { host: svc.host, service: svc.name, firing: state.firing ?? [] });
  }

  const toSend: PlannedSignal[] = [];
  let unchanged = 0;
  const firingNow = new Map<string, Set<string>>();
  for (const s of plan.signals) {
    const ids = firingNow.get(s.workflowId) ?? new Set<string>();
    for (const a of s.alerts) ids.add(a.id);
    firingNow.set(s.workflowId, ids);
    const before = new Set((known.get(s.workflowId)?.firing ?? []).map((f) => f.id));
    if (s.alerts.every((a) => before.has(a.id))) unchanged++;
    else toSend.push(s);
  }
  for (const [workflowId, k] of known) {
    const now = firingNow.get(workflowId) ?? new Set<string>();
    // Alerts a human signalled by hand (no identity from Prometheus) are not Prometheus' to resolve.
    const gone = k.firing.filter((f) => !f.id.startsWith('name:') && !now.has(f.id));
    if (gone.length) {
      toSend.push({
        host: k.host,
        service: k.service,
        status: 'resolved',
        alertnames: [...new Set(gone.map((g) => g.name))].sort(),
        alerts: gone,
        workflowId,
      });
    }
  }
  if (!opts.dryRun && toSend.length) {
    for (const d of await deliverPlan(client, config, toSend)) if (d.note) notes.push(`${d.service}: ${d.note}`);
  }
  return {
    firingAlerts: firing.length,
    signalled: toSend,
    unchanged,
    ignored: plan.ignored.length,
    rejected: malformed.length + plan.rejected.length,
    notActedOn: [...malformed, ...plan.rejected, ...plan.ignored].map(
      ({ alertname, host, service, status, reason }) => ({
        alertname,
        host,
        service,
        status,
        reason,
      }),
    ),
    notes,
  };
}
