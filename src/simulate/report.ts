// What a simulation did, per service and in total, read from the workflows' own audit records:
// incidents, restarts, restarts refused (by kind), escalations by reason, alert → restart latency,
// time held. Pure: the same records always give the same report.
import { isAbsolute, relative } from 'node:path';
import type { AuditRecord } from '../activities';
import { AUDIT_EVENTS, ESCALATION_EVENTS } from '../workflows/definitions';
import type { SimulationResult } from './driver';

/**
 * Why a restart was refused, by the `decision` the workflow writes to the audit log. A new kind of
 * refusal (e.g. the fleet breaker's) is one entry here; the report, `--compare` and `--json` pick it up.
 */
export const REFUSAL_KINDS = [
  { kind: 'cooldown', decisions: ['wait-cooldown'] },
  { kind: 'budget', decisions: ['refuse-budget'] },
  { kind: 'breaker', decisions: ['hold-breaker', 'hold-breaker-unavailable'] },
] as const;
export type RefusalKind = (typeof REFUSAL_KINDS)[number]['kind'];

/** Decisions after which the incident is held (waits for a slot, a human or the end of a pause). */
const HOLD_DECISIONS = new Set<string>([...REFUSAL_KINDS.flatMap((k) => k.decisions), 'await-approval', 'hold']);

export interface ServiceReport {
  host: string;
  service: string;
  incidents: number;
  restarts: number;
  refused: Record<RefusalKind, number>;
  escalations: Record<string, number>;
  /** Alert (incident opened) → its first restart, in whole seconds; null without restarts. */
  alertToRestart: { p50: number | null; p95: number | null; count: number };
  /** Seconds incidents spent held: refused a restart, awaiting approval, escalated, paused, held by fleet safety. */
  heldSeconds: number;
}

export interface SimulationReport {
  source: string;
  config: string;
  recovery: string;
  from: string;
  to: string;
  simulatedHours: number;
  wallSeconds: number;
  notActedOn: Record<string, number>;
  services: ServiceReport[];
  total: ServiceReport;
}

export function percentile(sorted: readonly number[], p: number): number | null {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const emptyRefused = (): Record<RefusalKind, number> =>
  Object.fromEntries(REFUSAL_KINDS.map((k) => [k.kind, 0])) as Record<RefusalKind, number>;
const emptyEscalations = (): Record<string, number> => Object.fromEntries(ESCALATION_EVENTS.map((e) => [e, 0]));

function refusalOf(decision: string): RefusalKind | null {
  return REFUSAL_KINDS.find((k) => (k.decisions as readonly string[]).includes(decision))?.kind ?? null;
}

/** One service's figures from its audit records (time order), held time counted up to `end`. */
export function serviceFigures(records: readonly AuditRecord[], end: number): Omit<ServiceReport, 'host' | 'service'> {
  const refused = emptyRefused();
  const escalations = emptyEscalations();
  let incidents = 0;
  let restarts = 0;
  let heldMs = 0;
  let heldSince: number | null = null;
  const release = (t: number) => {
    if (heldSince != null) heldMs += Math.max(0, t - heldSince);
    heldSince = null;
  };
  for (const r of records) {
    const t = Date.parse(r.time);
    switch (r.event) {
      case AUDIT_EVENTS.incidentOpened:
        incidents++;
        break;
      case AUDIT_EVENTS.decision: {
        const kind = refusalOf(r.decision);
        if (kind) refused[kind]++;
        if (HOLD_DECISIONS.has(r.decision)) heldSince ??= t;
        break;
      }
      // Fleet safety's holds (breaker, concurrency, dependency, silence, flapping) are `held` lines,
      // with the reason in the decision (`hold-breaker`, `hold-flapping`, ...), not `decision` lines.
      case AUDIT_EVENTS.held: {
        const kind = refusalOf(r.decision);
        if (kind) refused[kind]++;
        heldSince ??= t;
        break;
      }
      case AUDIT_EVENTS.restart:
        release(t);
        break;
      case AUDIT_EVENTS.attemptFinished:
        if (r.restarted) restarts++;
        break;
      case AUDIT_EVENTS.escalated:
        if (r.escalation) escalations[r.escalation] = (escalations[r.escalation] ?? 0) + 1;
        if (r.escalation === 'ConsecutiveFailures') heldSince ??= t;
        break;
      case AUDIT_EVENTS.incidentClosed:
        release(t);
        break;
    }
  }
  release(end);
  const latencies = restartLatencies(records).sort((a, b) => a - b);
  return {
    incidents,
    restarts,
    refused,
    escalations,
    alertToRestart: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), count: latencies.length },
    heldSeconds: Math.round(heldMs / 1000),
  };
}

/** Latencies are not additive: the total's percentiles come from every service's latencies. */
function totalOf(services: ServiceReport[], latencies: number[]): ServiceReport {
  const total: ServiceReport = {
    host: '*',
    service: 'total',
    incidents: 0,
    restarts: 0,
    refused: emptyRefused(),
    escalations: emptyEscalations(),
    alertToRestart: { p50: null, p95: null, count: latencies.length },
    heldSeconds: 0,
  };
  for (const s of services) {
    total.incidents += s.incidents;
    total.restarts += s.restarts;
    total.heldSeconds += s.heldSeconds;
    for (const k of Object.keys(s.refused) as RefusalKind[]) total.refused[k] += s.refused[k];
    for (const [k, v] of Object.entries(s.escalations)) total.escalations[k] = (total.escalations[k] ?? 0) + v;
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  total.alertToRestart.p50 = percentile(sorted, 50);
  total.alertToRestart.p95 = percentile(sorted, 95);
  return total;
}

export function buildReport(result: SimulationResult, source: string): SimulationReport {
  const byService = new Map<string, AuditRecord[]>();
  for (const r of result.records) {
    if (r.workflowId === '-') continue;
    const list = byService.get(r.workflowId) ?? [];
    list.push(r);
    byService.set(r.workflowId, list);
  }
  const services: ServiceReport[] = [];
  const latencies: number[] = [];
  const ids = [...result.planned.services.keys()].sort();
  for (const id of ids) {
    const { host, service } = result.planned.services.get(id)!;
    const recs = byService.get(id) ?? [];
    services.push({ host, service, ...serviceFigures(recs, result.to) });
    latencies.push(...restartLatencies(recs));
  }
  return {
    source,
    config: shownPath(result.config.source),
    recovery: result.recovery,
    from: new Date(result.from).toISOString(),
    to: new Date(result.to).toISOString(),
    simulatedHours: Math.round(((result.to - result.from) / 3_600_000) * 10) / 10,
    wallSeconds: Math.round(result.wallMs / 100) / 10,
    notActedOn: result.planned.notActedOn,
    services,
    total: totalOf(services, latencies),
  };
}

/** A file as the user named it: relative to the working folder when it is under it. */
export function shownPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
}

/** Per incident: seconds from its opening (the alert) to its first restart. */
function restartLatencies(records: readonly AuditRecord[]): number[] {
  const opened = new Map<string, number>();
  const out: number[] = [];
  for (const r of records) {
    const inc = r.incidentId ?? '';
    if (r.event === AUDIT_EVENTS.incidentOpened) opened.set(inc, Date.parse(r.time));
    else if (r.event === AUDIT_EVENTS.restart && opened.has(inc)) {
      out.push(Math.round((Date.parse(r.time) - opened.get(inc)!) / 1000));
      opened.delete(inc);
    }
  }
  return out;
}
