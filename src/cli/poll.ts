// `selfheal poll`: the no-Alertmanager option. One pass over Prometheus' firing alerts, feeding the
// same workflows as the webhook. Idempotent: it signals only what changed since the workflows last
// heard, so running it twice in a row sends nothing the second time.
import type { Client } from '@temporalio/client';
import { PrometheusClient } from '../activities/prometheus';
import type { Config } from '../config/config';
import { ServiceActions } from '../temporal/actions';
import { deliverPlan, planAlerts, type PlannedSignal } from '../temporal/alert-intake';
import type { AlertRef } from '../workflows/definitions';

export interface PollReport {
  firingAlerts: number;
  signalled: PlannedSignal[];
  unchanged: number;
  ignored: number;
  rejected: number;
  notes: string[];
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
  const firing = (await prom.alerts()).filter((a) => a.state === 'firing');
  const plan = planAlerts(
    config,
    firing.map((a) => ({
      status: 'firing' as const,
      labels: a.labels,
      annotations: a.annotations,
      startsAt: a.activeAt,
    })),
  );
  // Keyed by workflow id: which alerts (by identity) each workflow believes fire, and which fire now.
  const known = new Map<string, { host: string; service: string; firing: AlertRef[] }>();
  for (const { svc, state } of await new ServiceActions(client, config, 10_000).states()) {
    if (state) known.set(state.workflowId, { host: svc.host, service: svc.name, firing: state.firing ?? [] });
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
  const notes: string[] = [];
  if (!opts.dryRun && toSend.length) {
    for (const d of await deliverPlan(client, config, toSend, { source: 'poll' }))
      if (d.note) notes.push(`${d.service}: ${d.note}`);
  }
  return {
    firingAlerts: firing.length,
    signalled: toSend,
    unchanged,
    ignored: plan.ignored.length,
    rejected: plan.rejected.length,
    notes,
  };
}
