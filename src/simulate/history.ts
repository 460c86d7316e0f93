// A recorded alert history as the simulation replays it: deliveries (what one webhook request
// carried, at the time it arrived), each planned by the webhook's own intake (planAlerts), and the
// recorded firing intervals of every service that the simulated host answers from.
import { planAlerts, type IncomingAlert, type IntakePlan, type PlannedSignal } from '../client/alert-intake';
import type { Config } from '../config/config';

/** One webhook delivery: the alerts of one request, at the (epoch ms) time it arrived. */
export interface Delivery {
  at: number;
  alerts: IncomingAlert[];
}

export interface AlertHistory {
  /** Where it came from, for the report (`prometheus http://…`, a file name). */
  source: string;
  deliveries: Delivery[];
}

/** A delivery as the webhook would act on it. */
export interface PlannedDelivery {
  at: number;
  plan: IntakePlan;
}

/** Recorded "down" intervals of one service: some alert of it fired over [start, end). */
export interface Interval {
  start: number;
  end: number;
}

export interface PlannedHistory {
  deliveries: PlannedDelivery[];
  /** workflow id → its recorded down intervals, in time order. */
  down: Map<string, Interval[]>;
  /** workflow id → host and service. */
  services: Map<string, { host: string; service: string }>;
  from: number;
  to: number;
  notActedOn: Record<string, number>;
}

/** Plans every delivery with the webhook's intake and derives each service's recorded down intervals. */
export function planHistory(config: Config, history: AlertHistory, opts: { to?: number } = {}): PlannedHistory {
  const sorted = [...history.deliveries].sort((a, b) => a.at - b.at);
  const deliveries: PlannedDelivery[] = [];
  const down = new Map<string, Interval[]>();
  const services = new Map<string, { host: string; service: string }>();
  const firing = new Map<string, Set<string>>();
  const notActedOn: Record<string, number> = {};
  const onSignal = (at: number, s: PlannedSignal) => {
    services.set(s.workflowId, { host: s.host, service: s.service });
    const set = firing.get(s.workflowId) ?? new Set<string>();
    firing.set(s.workflowId, set);
    const wasDown = set.size > 0;
    for (const a of s.alerts) {
      if (s.status === 'firing') set.add(a.id);
      else set.delete(a.id);
    }
    const list = down.get(s.workflowId) ?? [];
    down.set(s.workflowId, list);
    if (!wasDown && set.size > 0) list.push({ start: at, end: Infinity });
    if (wasDown && set.size === 0) list[list.length - 1].end = at;
  };
  for (const d of sorted) {
    const plan = planAlerts(config, d.alerts);
    for (const x of [...plan.ignored, ...plan.rejected]) notActedOn[x.kind] = (notActedOn[x.kind] ?? 0) + 1;
    for (const s of plan.signals) onSignal(d.at, s);
    deliveries.push({ at: d.at, plan });
  }
  const from = sorted.length ? sorted[0].at : 0;
  const to = opts.to ?? (sorted.length ? sorted[sorted.length - 1].at : 0);
  return { deliveries, down, services, from, to, notActedOn };
}

/** The recorded down interval of a service that covers `t`, if any. */
export function intervalAt(list: readonly Interval[] | undefined, t: number): Interval | null {
  if (!list) return null;
  // Intervals are sorted and disjoint: binary search for the last start <= t.
  let lo = 0;
  let hi = list.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].start <= t) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found >= 0 && list[found].end > t ? list[found] : null;
}
