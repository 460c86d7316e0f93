// Fleet-safety activities of the control queue: the coordinator's settings from the configuration,
// the entity's reports to the coordinator (signal-with-start, so the coordinator exists whenever
// anyone needs it), and the silence check against Alertmanager's API v2 at the moment of acting.
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { Config } from '../config/config';
import type { FleetSettings } from '../policy/fleet';
import {
  fleetReportSignal,
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

/** Whether one of Alertmanager's matchers holds for these labels (a missing label reads as ""). */
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
      staticSummary: 'selfheal fleet coordinator: breakers, restart slots, dependencies',
    },
  );
}

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

    /** Tells the fleet coordinator something, starting it if it is not running. */
    async notifyFleet(report: FleetReport): Promise<void> {
      await reportToFleet(client(), report);
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
