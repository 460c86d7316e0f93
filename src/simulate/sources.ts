// Where a recorded alert history comes from: Prometheus' ALERTS series over a range, a file of
// recorded Alertmanager webhook deliveries (api.recordDeliveries), or selfheal's own audit log.
// Each becomes deliveries (history.ts) that the webhook's own intake plans.
import { readFileSync } from 'node:fs';
import type { AuditRecord } from '../activities/audit';
import { PrometheusClient } from '../activities/prometheus';
import type { IncomingAlert } from '../client/alert-intake';
import type { Config } from '../config/config';
import { AUDIT_EVENTS } from '../workflows/definitions';
import type { AlertHistory, Delivery } from './history';

/** Most points Prometheus returns per series (its limit is 11,000): the step grows with the range. */
const MAX_POINTS = 10_000;
/** Lines read from a file at most: a history is bounded whatever the file holds. */
export const MAX_LINES = 2_000_000;

export class HistoryError extends Error {}

/**
 * Firing intervals from `ALERTS{alertstate="firing"}` over [start, end]: an alert fires from its
 * first sample and resolves one step after its last one before a gap.
 */
export async function historyFromPrometheus(
  url: string,
  range: { start: number; end: number; stepSeconds?: number; timeoutMs?: number },
): Promise<AlertHistory> {
  const span = Math.max(1, (range.end - range.start) / 1000);
  const step = Math.max(range.stepSeconds ?? 1, Math.ceil(span / MAX_POINTS));
  const client = new PrometheusClient(url, range.timeoutMs ?? 60_000);
  const series = await client.queryRange('ALERTS{alertstate="firing"}', { ...range, stepSeconds: step });
  const deliveries: Delivery[] = [];
  for (const s of series) {
    const { __name__: _n, alertstate: _s, ...labels } = s.metric;
    let startedAt: number | null = null;
    let last = 0;
    const close = () => {
      if (startedAt == null) return;
      const end = last + step * 1000;
      if (end <= range.end) deliveries.push({ at: end, alerts: [{ status: 'resolved', labels }] });
      startedAt = null;
    };
    for (const [sec] of s.values) {
      const t = Math.round(sec * 1000);
      if (startedAt != null && t - last > step * 1000) close();
      if (startedAt == null) {
        startedAt = t;
        deliveries.push({ at: t, alerts: [{ status: 'firing', labels }] });
      }
      last = t;
    }
    close();
  }
  return { source: `prometheus ${url}`, deliveries };
}

interface RecordedLine {
  receivedAt?: unknown;
  body?: { alerts?: unknown };
  alerts?: unknown;
}

function asAlerts(raw: unknown, line: number, file: string): IncomingAlert[] {
  if (!Array.isArray(raw)) throw new HistoryError(`${file}:${line}: no alerts list`);
  return raw.filter(
    (a): a is IncomingAlert =>
      !!a &&
      typeof a === 'object' &&
      ((a as IncomingAlert).status === 'firing' || (a as IncomingAlert).status === 'resolved') &&
      !!(a as IncomingAlert).labels &&
      typeof (a as IncomingAlert).labels === 'object',
  );
}

/** Time of a bare webhook body: its newest startsAt (firing) or endsAt (resolved). */
function bodyTime(alerts: readonly (IncomingAlert & { startsAt?: string; endsAt?: string })[]): number {
  const times = alerts
    .map((a) => Date.parse((a.status === 'resolved' ? a.endsAt : a.startsAt) ?? ''))
    .filter(Number.isFinite);
  return times.length ? Math.max(...times) : NaN;
}

/**
 * Recorded webhook deliveries, one JSON line each: `{"receivedAt": ISO, "body": <webhook body>}` as
 * api.recordDeliveries writes them, or a bare Alertmanager webhook body (timed by its alerts).
 */
export function historyFromDeliveries(file: string, text = readFileSync(file, 'utf8')): AlertHistory {
  const deliveries: Delivery[] = [];
  const lines = text.split('\n');
  if (lines.length > MAX_LINES) throw new HistoryError(`${file}: more than ${MAX_LINES} lines`);
  lines.forEach((raw, i) => {
    if (!raw.trim()) return;
    let o: RecordedLine;
    try {
      o = JSON.parse(raw) as RecordedLine;
    } catch {
      throw new HistoryError(`${file}:${i + 1}: not JSON`);
    }
    const alerts = asAlerts(o.body ? o.body.alerts : o.alerts, i + 1, file);
    const at = typeof o.receivedAt === 'string' ? Date.parse(o.receivedAt) : bodyTime(alerts);
    if (!Number.isFinite(at)) throw new HistoryError(`${file}:${i + 1}: no receivedAt and no alert times`);
    deliveries.push({ at, alerts });
  });
  return { source: file, deliveries };
}

/**
 * The alerts selfheal saw, from its audit log: an incident opening is its alerts firing; the end of
 * validation or of the incident is them resolving (the log does not say when an alert resolved
 * after a verified restart, so that is taken as the close).
 */
export function historyFromAudit(config: Config, file: string, text = readFileSync(file, 'utf8')): AlertHistory {
  const { serviceLabel, hostLabel } = config.alerts;
  const deliveries: Delivery[] = [];
  const open = new Map<string, string[]>();
  const lines = text.split('\n');
  if (lines.length > MAX_LINES) throw new HistoryError(`${file}: more than ${MAX_LINES} lines`);
  for (const raw of lines) {
    let r: AuditRecord;
    try {
      r = JSON.parse(raw) as AuditRecord;
    } catch {
      continue; // a torn last line, or not a record
    }
    const at = Date.parse(r?.time ?? '');
    if (!Number.isFinite(at) || typeof r.host !== 'string' || typeof r.service !== 'string') continue;
    const key = `${r.workflowId}`;
    const alert = (status: 'firing' | 'resolved', alertname: string): IncomingAlert => ({
      status,
      labels: { alertname, [serviceLabel]: r.service, [hostLabel]: r.host },
    });
    if (r.event === AUDIT_EVENTS.incidentOpened) {
      const names = (/^(.*?) firing;/.exec(r.reason ?? '')?.[1] ?? 'unnamed').split(', ').filter(Boolean);
      open.set(key, names);
      deliveries.push({ at, alerts: names.map((n) => alert('firing', n)) });
    } else if (
      (r.event === AUDIT_EVENTS.validationCancelled || r.event === AUDIT_EVENTS.incidentClosed) &&
      open.has(key)
    ) {
      deliveries.push({ at, alerts: open.get(key)!.map((n) => alert('resolved', n)) });
      open.delete(key);
    }
  }
  return { source: file, deliveries };
}

/** `7d`, `36h`, `90m` before `now`, or an ISO time. */
export function parseFrom(text: string, now: number): number {
  const m = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(text.trim());
  if (m) {
    const unit = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 }[m[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return now - Number(m[1]) * unit;
  }
  const t = Date.parse(text);
  if (!Number.isFinite(t))
    throw new HistoryError(`--from ${text}: expected a duration such as 7d or 36h, or an ISO time`);
  return t;
}
