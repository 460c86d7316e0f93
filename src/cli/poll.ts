// `selfheal poll`: the no-Alertmanager option. One pass over Prometheus' firing alerts, feeding the
// same workflows as the webhook. Idempotent: it signals only what changed since the workflows last
// heard, so running it twice in a row sends nothing the second time.
import type { Client } from '@temporalio/client';
import { PrometheusClient } from '../activities/prometheus';
import type { Config } from '../config/config';
import { ServiceActions } from '../temporal/actions';
import { deliverPlan, planAlerts, type PlannedSignal } from '../temporal/alert-intake';
import { workflowIdFor } from '../workflows/definitions';

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
  const actions = new ServiceActions(client, config, 10_000);
  const fullStates = new Map<string, string[]>();
  for (const { svc, state } of await actions.states()) {
    if (state) fullStates.set(`${svc.host}/${svc.name}`, state.firingAlerts);
  }

  const toSend: PlannedSignal[] = [];
  let unchanged = 0;
  const firingNow = new Map<string, Set<string>>();
  for (const s of plan.signals) {
    const key = `${s.host}/${s.service}`;
    firingNow.set(key, new Set(s.alertnames));
    const known = fullStates.get(key) ?? [];
    if (s.alertnames.every((n) => known.includes(n))) unchanged++;
    else toSend.push(s);
  }
  for (const [key, known] of fullStates) {
    const now = firingNow.get(key) ?? new Set<string>();
    const gone = known.filter((n) => n !== 'manual' && !now.has(n));
    if (gone.length === 0) continue;
    const [host, ...rest] = key.split('/');
    const service = rest.join('/');
    toSend.push({ host, service, status: 'resolved', alertnames: gone, workflowId: workflowIdFor(host, service) });
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
