// Activities that run on the service's own host (task queue selfheal-host-<host>).
// Each checks the unit name and the allowlist before touching the service manager.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplicationFailure, log } from '@temporalio/activity';
import { findService, type Config, type ServiceConfig } from '../config/config';
import { HOST_ERRORS } from '../workflows/definitions';
import { unitNameProblem } from '../config/names';
import { activityAttempt, activityHeartbeat, activitySleep, activityWorkflowRunId } from './context';
import {
  defaultManagers,
  ServiceCommandError,
  startFingerprint,
  type ManagerFactory,
  type UnitStatus,
} from './service-manager';

export interface HostActivityDeps {
  config: Config;
  /** The host this worker serves. */
  host: string;
  managers?: ManagerFactory;
  /** Folder for restart markers (defaults to config.worker.stateDir). */
  stateDir?: string;
  /** How often verification polls the unit. */
  pollIntervalMs?: number;
  now?: () => number;
}

export interface ServiceRef {
  workflowId: string;
  host: string;
  service: string;
}

export interface RestartInput extends ServiceRef {
  /** Unique per attempt: a re-run of the same attempt must not restart twice. */
  attemptId: string;
}

export interface RestartResult {
  outcome: 'restarted' | 'already-restarted';
  unit: string;
  before: UnitStatus;
  after: UnitStatus;
  /** Fingerprint of the unit before this attempt's restart, for verification. */
  beforeFingerprint: string;
}

export interface VerifyInput extends ServiceRef {
  /** The unit must have been started since this fingerprint was taken. */
  beforeFingerprint: string;
  timeoutMs: number;
  stableMs: number;
}

export interface VerifyResult {
  ok: boolean;
  /** `verified`, `not-active`, `failed`, `not-stable`, `not-restarted`. */
  reason: string;
  detail: string;
  status: UnitStatus;
  elapsedMs: number;
}

const {
  invalidUnit: ERR_INVALID_UNIT,
  notAllowed: ERR_NOT_ALLOWED,
  restartFailed: ERR_RESTART_FAILED,
  hostStateUnwritable: ERR_HOST_STATE_UNWRITABLE,
} = HOST_ERRORS;

interface Marker {
  workflowId: string;
  attemptId: string;
  unit: string;
  beforeFingerprint: string;
  before: UnitStatus;
  at: string;
}

const MARKER_TTL_MS = 24 * 3_600_000;

export function createHostActivities(deps: HostActivityDeps) {
  const managers = deps.managers ?? defaultManagers(undefined, { sudo: deps.config.worker.sudo });
  const stateDir = deps.stateDir ?? deps.config.worker.stateDir;
  const markerDir = join(stateDir, 'restart-markers');
  const pollMs = deps.pollIntervalMs ?? 1_000;
  const now = deps.now ?? Date.now;

  /** The allowlist: only services configured for this very host. */
  function allowed(ref: ServiceRef): ServiceConfig {
    const problem = unitNameProblem(ref.service);
    if (problem) {
      throw ApplicationFailure.create({
        type: ERR_INVALID_UNIT,
        message: `refusing service name ${JSON.stringify(ref.service)}: ${problem}`,
        nonRetryable: true,
      });
    }
    if (ref.host !== deps.host) {
      throw ApplicationFailure.create({
        type: ERR_NOT_ALLOWED,
        message: `this worker serves host ${JSON.stringify(deps.host)}, not ${JSON.stringify(ref.host)}`,
        nonRetryable: true,
      });
    }
    const svc = findService(deps.config, deps.host, ref.service);
    if (!svc) {
      throw ApplicationFailure.create({
        type: ERR_NOT_ALLOWED,
        message: `${ref.service} is not in the allowlist of host ${deps.host} (${deps.config.source})`,
        nonRetryable: true,
      });
    }
    return svc;
  }

  /**
   * One marker per attempt of one workflow run. The run id makes it unique across resets,
   * terminate-and-recreate and a lost Temporal database, which all start numbering attempts again.
   */
  function markerPath(ref: RestartInput): string {
    const run = activityWorkflowRunId() ?? '';
    const digest = createHash('sha256')
      .update(`${ref.workflowId}\n${run}\n${ref.attemptId}`)
      .digest('hex')
      .slice(0, 32);
    return join(markerDir, `${digest}.json`);
  }

  async function readMarker(path: string): Promise<Marker | null> {
    try {
      return JSON.parse(await readFile(path, 'utf8')) as Marker;
    } catch {
      return null;
    }
  }

  async function writeMarker(path: string, marker: Marker): Promise<void> {
    try {
      await mkdir(markerDir, { recursive: true, mode: 0o700 });
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(marker), { mode: 0o600 });
      await rename(tmp, path);
    } catch (err) {
      throw ApplicationFailure.create({
        type: ERR_HOST_STATE_UNWRITABLE,
        message:
          `not restarting ${marker.unit}: cannot write the restart marker in ${markerDir} ` +
          `(${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Point worker.stateDir ` +
          `(default <temporal.dataDir>/host-state) at a folder this worker can write, e.g. /var/lib/selfheal/host-state`,
        nonRetryable: true,
      });
    }
  }

  async function pruneMarkers(): Promise<void> {
    try {
      for (const name of await readdir(markerDir)) {
        const p = join(markerDir, name);
        const st = await stat(p);
        if (now() - st.mtimeMs > MARKER_TTL_MS) await unlink(p).catch(() => undefined);
      }
    } catch {
      // no marker folder yet
    }
  }

  return {
    /** Current state of the unit on this host. */
    async checkService(ref: ServiceRef): Promise<UnitStatus> {
      const svc = allowed(ref);
      return managers(svc.manager).status(svc.unit);
    },

    /**
     * Restarts the unit once per attempt. Before restarting it records the unit's start fingerprint in a
     * host-local marker; if this attempt runs again (worker crash, timeout) and the unit has been started
     * since that fingerprint, it reports `already-restarted` instead of restarting a second time.
     */
    async restartService(input: RestartInput): Promise<RestartResult> {
      const svc = allowed(input);
      const manager = managers(svc.manager);
      const path = markerPath(input);
      const before = await manager.status(svc.unit);
      const existing = await readMarker(path);
      if (existing) {
        if (startFingerprint(before) !== existing.beforeFingerprint) {
          log.warn('restart already performed for this attempt; not restarting again', {
            unit: svc.unit,
            attemptId: input.attemptId,
            activityAttempt: activityAttempt(),
          });
          return {
            outcome: 'already-restarted',
            unit: svc.unit,
            before: existing.before,
            after: before,
            beforeFingerprint: existing.beforeFingerprint,
          };
        }
        log.info('earlier run of this attempt stopped before the restart took effect; restarting', {
          unit: svc.unit,
          attemptId: input.attemptId,
        });
      } else {
        await pruneMarkers();
        await writeMarker(path, {
          workflowId: input.workflowId,
          attemptId: input.attemptId,
          unit: svc.unit,
          beforeFingerprint: startFingerprint(before),
          before,
          at: new Date(now()).toISOString(),
        });
      }
      const beforeFingerprint = existing?.beforeFingerprint ?? startFingerprint(before);
      log.info('restarting', { unit: svc.unit, manager: manager.kind, attemptId: input.attemptId });
      // Heartbeat while the service manager works, so a crashed worker is noticed quickly.
      const beat = setInterval(() => activityHeartbeat({ phase: 'restarting' }), 2_000);
      try {
        await manager.restart(svc.unit);
      } catch (err) {
        if (err instanceof ServiceCommandError) {
          throw ApplicationFailure.create({
            type: ERR_RESTART_FAILED,
            message: err.message,
            details: [err.result.stderr.slice(0, 2000)],
            nonRetryable: true,
          });
        }
        throw err;
      } finally {
        clearInterval(beat);
      }
      const after = await manager.status(svc.unit);
      return { outcome: 'restarted', unit: svc.unit, before, after, beforeFingerprint };
    },

    /** Polls until the unit is active and has stayed so (same process) for `stableMs`, or the timeout passes. */
    async verifyService(input: VerifyInput): Promise<VerifyResult> {
      const svc = allowed(input);
      const manager = managers(svc.manager);
      const started = now();
      const deadline = started + input.timeoutMs;
      let stableSince: number | null = null;
      let stablePid = -1;
      for (;;) {
        const st = await manager.status(svc.unit);
        const t = now();
        const restarted = startFingerprint(st) !== input.beforeFingerprint;
        if (st.activeState === 'active' && restarted) {
          if (stableSince === null || st.mainPid !== stablePid) {
            stableSince = t;
            stablePid = st.mainPid;
          }
          if (t - stableSince >= input.stableMs) {
            return {
              ok: true,
              reason: 'verified',
              detail: `active (${st.subState}), pid ${st.mainPid}`,
              status: st,
              elapsedMs: t - started,
            };
          }
        } else {
          stableSince = null;
          if (st.activeState === 'failed') {
            return {
              ok: false,
              reason: 'failed',
              detail: `unit failed (${st.subState})`,
              status: st,
              elapsedMs: t - started,
            };
          }
        }
        if (t >= deadline) {
          const reason = !restarted ? 'not-restarted' : st.activeState === 'active' ? 'not-stable' : 'not-active';
          return {
            ok: false,
            reason,
            detail: `${st.activeState}/${st.subState} after ${Math.round((t - started) / 1000)}s`,
            status: st,
            elapsedMs: t - started,
          };
        }
        activityHeartbeat({ activeState: st.activeState });
        await activitySleep(Math.min(pollMs, Math.max(1, deadline - t)));
      }
    },
  };
}

export type HostActivities = ReturnType<typeof createHostActivities>;
