// The simulated world: a host model that answers the workflow's host activities (a restart is
// recorded, never executed) and control activities that keep everything in memory (no audit log
// file, no escalation webhook, no Prometheus). Typed as the real activities, so a change to their
// signatures breaks the build here rather than the simulation at run time.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { createFleetActivities } from '../activities/fleet';
import type { AuditRecord, ControlActivities, HostActivities, ResolvedService } from '../activities';
import type { UnitStatus } from '../activities/service-manager';
import { findService, type Config } from '../config/config';
import { workflowIdFor } from '../workflows/definitions';
import { fleetAnswerSignal } from '../workflows/fleet-definitions';
import { intervalAt, type Interval } from './history';

/** The first attempt of a simulated verification: stands for the time the host's takes. */
const SIMULATED_VERIFY_WAIT = 'SimulatedVerifyWait';

/** How the simulated service answers a restart (documented in README "Tune your policy"). */
export const RECOVERY_MODELS = ['restart-fixes', 'as-recorded'] as const;
export type RecoveryModel = (typeof RECOVERY_MODELS)[number];

/**
 * Simulated time of the running activity: when the server scheduled this attempt (workflow time).
 * Only for activities that do not retry with a delay: on the test server a retry's attempt is
 * scheduled at the failure, not after the delay (verifyService reads the first attempt's time).
 */
function activityNow(): number {
  return Context.current().info.currentAttemptScheduledTimestampMs;
}

export class HostModel {
  /** workflow id → simulated restart times (simulation clock). */
  readonly restarts = new Map<string, number[]>();
  private readonly lastSeen = new Map<string, number>();

  /**
   * @param down recorded down intervals per workflow id, in recorded time
   * @param offset simulation clock minus recorded clock
   */
  constructor(
    readonly recovery: RecoveryModel,
    private readonly down: Map<string, Interval[]>,
    private offset = 0,
  ) {}

  setOffset(offset: number): void {
    this.offset = offset;
  }

  private lastRestart(id: string): number | null {
    const r = this.restarts.get(id);
    return r?.length ? r[r.length - 1] - this.offset : null;
  }

  /** The recorded interval at recorded time `t`, unless a simulated restart fixed it (restart-fixes). */
  private openInterval(id: string, t: number): Interval | null {
    const iv = intervalAt(this.down.get(id), t);
    if (!iv || this.recovery === 'as-recorded') return iv;
    const last = this.lastRestart(id);
    return last != null && last >= iv.start ? null : iv;
  }

  /** Whether the service is down at simulation time `simNow`. */
  isDown(id: string, simNow: number): boolean {
    this.lastSeen.set(id, simNow);
    return this.openInterval(id, simNow - this.offset) != null;
  }

  /** restart-fixes: a firing alert delivered at recorded time `t` belongs to an outage a restart already fixed. */
  alreadyFixed(id: string, t: number): boolean {
    if (this.recovery === 'as-recorded') return false;
    const iv = intervalAt(this.down.get(id), t);
    const last = this.lastRestart(id);
    return iv != null && last != null && last >= iv.start;
  }

  /**
   * A verification that starts at simulation time `simNow`, as the host's would go: the unit must be
   * up and stay up for `stableMs`, all within `timeoutMs`. Verified after the wait for the service to
   * come back plus the stable period; failed after the whole timeout.
   */
  verification(id: string, simNow: number, timeoutMs: number, stableMs: number): { ok: boolean; tookMs: number } {
    const iv = this.openInterval(id, simNow - this.offset);
    const upAfter = iv == null ? 0 : iv.end - (simNow - this.offset);
    return upAfter + stableMs <= timeoutMs
      ? { ok: true, tookMs: upAfter + stableMs }
      : { ok: false, tookMs: timeoutMs };
  }

  /** Whether the service is up within `ms` of simulation time `simNow`. */
  upWithin(id: string, simNow: number, ms: number): boolean {
    return this.verification(id, simNow, ms, 0).ok;
  }

  /** The last simulation time an activity looked at this service (for local activities, whose clock is local). */
  seenAt(id: string): number | undefined {
    return this.lastSeen.get(id);
  }

  recordRestart(id: string, simNow: number): void {
    const list = this.restarts.get(id) ?? [];
    list.push(simNow);
    this.restarts.set(id, list);
    this.lastSeen.set(id, simNow);
  }
}

function unitStatus(unit: string, active: boolean, starts: number): UnitStatus {
  return {
    unit,
    loadState: 'loaded',
    activeState: active ? 'active' : 'failed',
    subState: active ? 'running' : 'failed',
    mainPid: active ? 1000 + starts : 0,
    invocationId: `sim-${starts}`,
    activeEnterMonotonicUs: starts,
    nRestarts: starts,
  };
}

/** Host activities answered by the model: nothing is executed anywhere. */
export function simulatedHostActivities(config: Config, model: HostModel): HostActivities {
  const unitOf = (host: string, service: string) => findService(config, host, service)?.unit ?? service;
  const starts = (id: string) => model.restarts.get(id)?.length ?? 0;
  return {
    async checkService(ref) {
      const now = activityNow();
      return unitStatus(unitOf(ref.host, ref.service), !model.isDown(ref.workflowId, now), starts(ref.workflowId));
    },
    async restartService(input) {
      const now = activityNow();
      const unit = unitOf(input.host, input.service);
      const before = unitStatus(unit, !model.isDown(input.workflowId, now), starts(input.workflowId));
      model.recordRestart(input.workflowId, now);
      const after = unitStatus(unit, !model.isDown(input.workflowId, now), starts(input.workflowId));
      return { outcome: 'restarted', unit, before, after, beforeFingerprint: before.invocationId };
    },
    // Takes the simulated time the host's verification would (the restart slot is held meanwhile, as
    // in production): the first attempt asks the server to run it again that much later (a retry
    // delay, which the time-skipping server skips), and the second answers for the verification that
    // started with the first.
    async verifyService(input) {
      const info = Context.current().info;
      const started = info.scheduledTimestampMs;
      const { ok, tookMs } = model.verification(input.workflowId, started, input.timeoutMs, input.stableMs);
      if (info.attempt === 1 && tookMs > 0) {
        throw ApplicationFailure.create({
          type: SIMULATED_VERIFY_WAIT,
          message: `simulated: verifying for ${tookMs} ms`,
          nextRetryDelay: tookMs,
        });
      }
      const status = unitStatus(unitOf(input.host, input.service), ok, starts(input.workflowId));
      return ok
        ? { ok, reason: 'verified', detail: 'simulated: the service came back', status, elapsedMs: tookMs }
        : {
            ok,
            reason: 'not-active',
            detail: `simulated: the recorded alert still fired ${Math.round(input.timeoutMs / 1000)}s after the restart`,
            status,
            elapsedMs: tookMs,
          };
    },
  };
}

/** What the simulated control activities saw: the decisions (audit records) and escalations. */
export interface SimulationRecords {
  audit: AuditRecord[];
}

/**
 * Control activities that keep everything in memory: no live audit log, webhook or Prometheus.
 * `coordinator: false` (a simulation that has shown the coordinator could never hold a restart,
 * driver.ts `coordinatorNeverActs`): the entity's reports go nowhere and its asks are granted at once,
 * as the real coordinator answers them while no breaker is over its threshold, no restart slots are
 * short and no dependency is down. Only that answer is given here, never a hold: the policy stays in
 * the coordinator, which runs whenever it could have decided otherwise.
 */
export function simulatedControlActivities(
  config: Config,
  model: HostModel,
  records: SimulationRecords,
  onRecord?: (r: AuditRecord) => void,
  opts: { coordinator?: boolean } = {},
): ControlActivities {
  const prometheus = !!config.prometheus.url;
  const fleet = createFleetActivities(config);
  return {
    // The real fleet coordinator runs in the simulation (on its test server, through the activity's
    // client); Alertmanager is never asked: a simulation has no silences.
    ...fleet,
    notifyFleet:
      opts.coordinator === false
        ? async (report) => {
            if (report.kind !== 'request') return;
            await Context.current()
              .client.workflow.getHandle(report.workflowId)
              .signal(fleetAnswerSignal, { incidentId: report.incidentId, ask: report.ask, decision: 'grant' });
          }
        : fleet.notifyFleet,
    async activeSilence() {
      return { reachable: null };
    },
    async resolveService(ref): Promise<ResolvedService> {
      const svc = findService(config, ref.host, ref.service);
      if (!svc) return { configured: false, reason: `${ref.service} on ${ref.host} is not in ${config.source}` };
      return { configured: true, unit: svc.unit, manager: svc.manager, policy: svc.policy };
    },
    async audit(record) {
      records.audit.push(record);
      onRecord?.(record);
      return { written: true };
    },
    async escalate() {
      // Counted from the `escalated` audit record; nothing is sent.
      return { delivered: [], refused: [] };
    },
    async alertStillFiring(check) {
      if (!prometheus) return null;
      const id = workflowIdFor(check.host, check.service);
      const now = model.seenAt(id);
      return now == null ? null : model.isDown(id, now);
    },
    async waitForAlertClear(check) {
      if (!prometheus) return { cleared: true, detail: 'no prometheus.url configured; skipped' };
      const id = workflowIdFor(check.host, check.service);
      const cleared = model.upWithin(id, activityNow(), check.timeoutMs);
      return { cleared, detail: cleared ? 'simulated: alert cleared' : 'simulated: still firing' };
    },
  };
}
