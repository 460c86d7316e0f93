// Fleet-safety activities of the control queue: the coordinator's settings from the configuration,
// the entity's reports to the coordinator (signal-with-start, so the coordinator exists whenever
// anyone needs it; batched while a send is in flight), and the silence check against Alertmanager's API v2 at the moment of acting.
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { Config } from '../config/config';
import type { FleetSettings } from '../policy/fleet';
import {
  fleetReportSignal,
  fleetReportsSignal,
  FLEET_TASK_QUEUE,
  FLEET_WORKFLOW_ID,
  FLEET_WORKFLOW_TYPE,
  type FleetReport,
  type FleetWorkflowInput,
} from '../workflows/fleet-definitions';
import { activityLog } from './context';

export interface SilenceCheck {
  host: string;
  service: string;
  alertnames: string[];
}

export interface SilenceInfo {
  id: string;
  createdBy: string;
  comment: string;
  endsAt: string;
}

export type SilenceAnswer =
  | { reachable: true; silence: SilenceInfo | null }
  /** `hold`: alertmanager.unreachable is `hold` (default `proceed`: act as if there were no silence). */
  | { reachable: false; detail: string; hold?: boolean }
  | { reachable: null };

interface Matcher {
  name: string;
  value: string;
  isRegex?: boolean;
  isEqual?: boolean;
}
interface AmSilence {
  id: string;
  status?: { state?: string };
  matchers?: Matcher[];
  createdBy?: string;
  comment?: string;
  endsAt?: string;
}

/** Sends the fleet coordinator a report, starting the coordinator if it is not running. */
export async function reportToFleet(client: Client, report: FleetReport): Promise<void> {
  await client.workflow.signalWithStart<(input: FleetWorkflowInput) => Promise<void>, [FleetReport]>(
    FLEET_WORKFLOW_TYPE,
    {
      workflowId: FLEET_WORKFLOW_ID,
      taskQueue: FLEET_TASK_QUEUE,
      args: [{}],
      signal: fleetReportSignal.name,
      signalArgs: [report],
      staticSummary: COORDINATOR_SUMMARY,
    },
  );
}

/** Sends the fleet coordinator several reports in one signal, in order, starting it if it is not running. */
export async function reportsToFleet(client: Client, reports: FleetReport[]): Promise<void> {
  if (reports.length === 1) return reportToFleet(client, reports[0]);
  await client.workflow.signalWithStart<(input: FleetWorkflowInput) => Promise<void>, [FleetReport[]]>(
    FLEET_WORKFLOW_TYPE,
    {
      workflowId: FLEET_WORKFLOW_ID,
      taskQueue: FLEET_TASK_QUEUE,
      args: [{}],
      signal: fleetReportsSignal.name,
      signalArgs: [reports],
      staticSummary: COORDINATOR_SUMMARY,
    },
  );
}

const COORDINATOR_SUMMARY = 'selfheal fleet coordinator: breakers, restart slots, dependencies';
/** Reports in one signal at most (a payload of a few tens of KiB). */
export const MAX_REPORTS_PER_SIGNAL = 100;

/** The running activity's cancellation; none outside an activity (tests call the function directly). */
function activityCancelled(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}

/** Bounds one batch's send (the local activities waiting for it time out at 15 s and retry). */
const SEND_TIMEOUT_MS = 10_000;

/**
 * A batch's send, detached from the activity that happened to start it (the worker ties its client
 * calls to that activity's cancellation, which must not fail the other reports), with its own deadline.
 */
function detachedSend(client: Client, reports: FleetReport[]): Promise<void> {
  return client.withAbortSignal(new AbortController().signal, () =>
    client.withDeadline(Date.now() + SEND_TIMEOUT_MS, () => reportsToFleet(client, reports)),
  );
}

/**
 * One send in flight at a time; reports made meanwhile wait and go together in the next one. Every
 * signal-with-start on the one coordinator execution is serialized by the server: in an alert storm
 * each call took ~750 ms, holding the calling entity's workflow task slot throughout (BENCHMARKS.md,
 * Scale, target 4). A caller resolves once its own report is in the coordinator's history and fails
 * with its batch (its local activity retries it). A caller that gives up (its activity cancelled,
 * e.g. timed out) while its report still waits takes the report out, so a retry cannot deliver it
 * twice; as before, only a send the caller gave up on after it reached the server can.
 */
export class ReportBatcher {
  private readonly queue: { report: FleetReport; done: (err?: unknown) => void }[] = [];
  private sending = false;

  constructor(
    private readonly send: (reports: FleetReport[]) => Promise<void>,
    private readonly max = MAX_REPORTS_PER_SIGNAL,
  ) {}

  report(report: FleetReport, cancelled?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const entry = {
        report,
        done: (err?: unknown) => {
          cancelled?.removeEventListener('abort', giveUp);
          if (err === undefined) resolve();
          else reject(err as Error);
        },
      };
      const giveUp = () => {
        const i = this.queue.indexOf(entry);
        if (i < 0) return; // already being sent
        this.queue.splice(i, 1);
        entry.done(cancelled?.reason ?? new Error('cancelled'));
      };
      if (cancelled?.aborted) return reject(cancelled.reason as Error);
      cancelled?.addEventListener('abort', giveUp);
      this.queue.push(entry);
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.max);
        let failure: unknown;
        try {
          await this.send(batch.map((b) => b.report));
        } catch (err) {
          failure = err ?? new Error('the report could not be sent');
        }
        for (const b of batch) b.done(failure);
      }
    } finally {
      this.sending = false;
    }
  }
}

/** Whether one of Alertmanager's matchers holds for these labels (a missing label reads as ""). */
export function matcherHolds(m: Matcher, labels: Record<string, string>): boolean {
  const v = labels[m.name] ?? '';
  let ok: boolean;
  if (m.isRegex) {
    try {
      ok = new RegExp(`^(?:${m.value})$`).test(v);
    } catch {
      return false;
    }
  } else ok = v === m.value;
  return m.isEqual === false ? !ok : ok;
}

export function createFleetActivities(config: Config, clientOverride?: Client) {
  const client = (): Client => clientOverride ?? Context.current().client;
  const am = config.alertmanager;
  const batchers = new WeakMap<Client, ReportBatcher>();

  async function getJson<T>(path: string): Promise<T> {
    const res = await fetch(new URL(path, am.url!.endsWith('/') ? am.url! : `${am.url}/`), {
      signal: AbortSignal.timeout(am.timeoutMs),
      headers: { accept: 'application/json' },
    });
    if (!res.ok) throw new Error(`Alertmanager answered ${res.status} for ${path}`);
    return (await res.json()) as T;
  }

  return {
    /** What the coordinator needs of the configuration. */
    async fleetSettings(): Promise<FleetSettings> {
      const servicesPerHost: Record<string, number> = {};
      for (const s of config.services) servicesPerHost[s.host] = (servicesPerHost[s.host] ?? 0) + 1;
      const f = config.fleet;
      return {
        breaker: f.breaker,
        maxRestartsInFlight: f.maxRestartsInFlight,
        maxRestartsInFlightPerHost: f.maxRestartsInFlightPerHost,
        leaseMs: f.leaseMs,
        servicesPerHost,
      };
    },

    /** Tells the fleet coordinator something, starting it if it is not running (batched, see ReportBatcher). */
    async notifyFleet(report: FleetReport): Promise<void> {
      const c = client();
      let batcher = batchers.get(c);
      if (!batcher) batchers.set(c, (batcher = new ReportBatcher((rs) => detachedSend(c, rs))));
      await batcher.report(report, activityCancelled());
    },

    /**
     * The active silence that mutes this service's alert now, if any: Alertmanager's own verdict on
     * the alerts it holds (`silencedBy`), else a silence whose matchers hold for the labels we know
     * (alertname, service, host), for an alert Alertmanager does not hold yet. `reachable: null`:
     * no alertmanager.url configured.
     */
    async activeSilence(c: SilenceCheck): Promise<SilenceAnswer> {
      if (!am.url) return { reachable: null };
      const { serviceLabel, hostLabel } = config.alerts;
      try {
        const silences = (await getJson<AmSilence[]>('api/v2/silences')).filter((s) => s.status?.state === 'active');
        if (silences.length === 0) return { reachable: true, silence: null };
        const filter = [`${serviceLabel}="${c.service}"`, `${hostLabel}="${c.host}"`]
          .map((f) => `filter=${encodeURIComponent(f)}`)
          .join('&');
        const alerts = await getJson<{ labels: Record<string, string>; status?: { silencedBy?: string[] } }[]>(
          `api/v2/alerts?${filter}&active=true&silenced=true&inhibited=true&unprocessed=true`,
        );
        const ids = new Set(
          alerts
            .filter((a) => c.alertnames.length === 0 || c.alertnames.includes(a.labels.alertname))
            .flatMap((a) => a.status?.silencedBy ?? []),
        );
        const byLabels = (s: AmSilence) =>
          (c.alertnames.length ? c.alertnames : ['']).some((alertname) =>
            (s.matchers ?? []).every((m) =>
              matcherHolds(m, { alertname, [serviceLabel]: c.service, [hostLabel]: c.host }),
            ),
          );
        const hit =
          silences.find((s) => ids.has(s.id)) ?? silences.find((s) => (s.matchers ?? []).length > 0 && byLabels(s));
        return {
          reachable: true,
          silence: hit
            ? { id: hit.id, createdBy: hit.createdBy ?? '', comment: hit.comment ?? '', endsAt: hit.endsAt ?? '' }
            : null,
        };
      } catch (err) {
        const detail = (err as Error).message;
        activityLog().warn('cannot ask Alertmanager for silences', { error: detail });
        return { reachable: false, detail, hold: am.unreachable === 'hold' };
      }
    },
  };
}
