// The entity workflow: one per (host, service), id selfheal/<host>/<service>, living for as long as
// the service is guarded. It validates alerts, applies the policy, restarts through the host's own
// worker, verifies, and escalates. All policy state lives here and survives continue-as-new.
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  continueAsNew,
  allHandlersFinished,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  TimeoutFailure,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { AuditRecord, ControlActivities, EscalationPayload, HostActivities } from '../activities';
import { formatDuration } from '../policy/duration';
import {
  afterAttempt,
  budgetFreesAt,
  cooldownUntil,
  decideRestart,
  failuresInForce,
  pruneRestarts,
  restartsInWindow,
  statusOf,
  stillUnhealthy,
  type Phase,
  type Policy,
} from '../policy/policy';
import {
  alertFiringSignal,
  alertResolvedSignal,
  approveSignal,
  hostTaskQueue,
  MAX_ALERT_ID_LENGTH,
  MAX_ALERT_NAME_LENGTH,
  MAX_FIRING_ALERTS,
  MAX_INCIDENT_ALERTNAMES,
  MAX_UNDELIVERED_ESCALATIONS,
  pauseSignal,
  resumeSignal,
  SA_FAILURES,
  SA_HOST,
  SA_PHASE,
  SA_SERVICE,
  SA_STATUS,
  skipSignal,
  stateQuery,
  workflowIdFor,
  type AlertRef,
  type AttemptRecord,
  type CarriedIncident,
  type CarriedState,
  type EscalationEvent,
  type HumanActionPayload,
  type ServiceStateView,
  type ServiceWorkflowInput,
} from './definitions';

// Changes to the command sequence, each behind patched() so that histories recorded before replay.
/** The workflow, not Temporal, retries a restart call, so it knows whether any call may have run systemctl. */
const PATCH_RESTART_RETRY = 'restart-retried-by-workflow';
/** A service recovering on its own no longer resets consecutive failures (only a verified restart or skip do). */
const PATCH_FAILURES_SURVIVE_RECOVERY = 'failures-survive-recovery';

export const DEFAULT_MAX_HISTORY_EVENTS = 2_000;
export const DEFAULT_MAX_SIGNALS_PER_RUN = 1_000;
const RECENT_ATTEMPTS = 10;
const WAIT_PHASES: readonly Phase[] = [
  'idle',
  'paused',
  'validating',
  'cooldown',
  'exhausted',
  'awaiting-approval',
  'escalated',
];

// Control-queue work that is quick and local to the workflow worker: cheap in history.
const local = proxyLocalActivities<ControlActivities>({
  startToCloseTimeout: '30s',
  scheduleToCloseTimeout: '5m',
  retry: { initialInterval: '1s', maximumInterval: '30s', backoffCoefficient: 2 },
});

// The audit activity never fails and never waits on the disk (it holds lines back itself): a short
// deadline and few retries, so a broken worker cannot hold a decision up either.
const auditLocal = proxyLocalActivities<ControlActivities>({
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '30s',
  retry: { initialInterval: '1s', maximumAttempts: 3 },
});

// Escalations are retried until delivered: no attempt limit, backoff capped at 5 minutes.
const delivery = proxyActivities<ControlActivities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '5s', maximumInterval: '5m', backoffCoefficient: 2 },
});

/** How a failed host call reads as an attempt result. */
interface FailureReading {
  reason: string;
  detail: string;
  /** Whether the restart command may have run (counts against the budget, conservatively). */
  restarted: boolean;
}

/** Whether the failed activity call started on a worker (a schedule-to-start timeout means it never did). */
function callStarted(err: unknown): boolean {
  return !(
    err instanceof ActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START
  );
}

/** Whether a failed restart call is worth calling again with the same attempt id (the host makes it idempotent). */
function worthRetrying(err: unknown): boolean {
  if (!(err instanceof ActivityFailure)) return false;
  const cause = err.cause;
  if (cause instanceof TimeoutFailure) return cause.timeoutType !== TimeoutType.SCHEDULE_TO_START;
  if (cause instanceof ApplicationFailure) return !cause.nonRetryable && !NON_RETRYABLE.includes(cause.type ?? '');
  return true;
}

const NON_RETRYABLE = ['InvalidUnitName', 'ServiceNotAllowed', 'RestartFailed'];

function readFailure(err: unknown, restartMayHaveRun: boolean): FailureReading {
  const detail = err instanceof Error ? err.message : String(err);
  if (err instanceof ActivityFailure) {
    const cause = err.cause;
    if (cause instanceof TimeoutFailure) {
      if (cause.timeoutType === TimeoutType.SCHEDULE_TO_START) {
        return { reason: 'host-unreachable', detail: 'no worker polled the host queue in time', restarted: false };
      }
      return {
        reason: 'host-timeout',
        detail: `host worker stopped responding (${cause.timeoutType} timeout)`,
        restarted: restartMayHaveRun,
      };
    }
    if (cause instanceof ApplicationFailure) {
      const text = cause.message;
      switch (cause.type) {
        case 'RestartFailed':
          return { reason: 'restart-command-failed', detail: text, restarted: true };
        case 'ServiceNotAllowed':
          return { reason: 'not-allowed', detail: text, restarted: false };
        case 'InvalidUnitName':
          return { reason: 'invalid-unit', detail: text, restarted: false };
        case 'HostStateUnwritable':
          return { reason: 'host-state-unwritable', detail: text, restarted: false };
        default:
          return { reason: 'host-error', detail: text, restarted: restartMayHaveRun };
      }
    }
  }
  return { reason: 'error', detail, restarted: restartMayHaveRun };
}

/** The outcome of every restart call of one attempt. */
class RestartCallsFailed extends Error {
  constructor(readonly reading: FailureReading) {
    super(reading.detail);
  }
}

function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])].sort();
}

/** Adds names to a bounded list: the first ones are kept, so an incident keeps what opened it. */
function addNames(a: readonly string[], b: readonly string[], max: number): string[] {
  const out = [...a];
  for (const n of b) if (!out.includes(n) && out.length < max) out.push(n);
  return out;
}

const clipName = (n: string) => n.slice(0, MAX_ALERT_NAME_LENGTH);

/** Alert names of a payload, clipped the same way on firing and on resolve. */
function cleanNames(names: unknown): string[] {
  return union([], (stringList(names) ?? []).filter((n) => n.length > 0).map(clipName));
}

/** Alert identities of a payload; a name without identity is one alert (`name:<name>`). */
function alertRefs(p: Record<string, unknown>): AlertRef[] {
  const refs: AlertRef[] = [];
  if (Array.isArray(p.alerts)) {
    for (const a of p.alerts) {
      const o = payloadObject(a);
      if (typeof o.id === 'string' && o.id && typeof o.name === 'string') {
        refs.push({ id: o.id.slice(0, MAX_ALERT_ID_LENGTH), name: clipName(o.name) });
      }
    }
  }
  if (refs.length) return refs;
  return cleanNames(p.alertnames).map((name) => ({ id: `name:${name}`, name }));
}

/** Carried state from before identities held plain names: each becomes one alert. */
function migrateFiring(firing: readonly (AlertRef | string)[] | undefined): AlertRef[] {
  return (firing ?? []).map((f) => (typeof f === 'string' ? { id: `name:${f}`, name: f } : f));
}

function payloadObject(p: unknown): Record<string, unknown> {
  return p !== null && typeof p === 'object' && !Array.isArray(p) ? (p as Record<string, unknown>) : {};
}

function stringList(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;
}

function humanPayload(p: unknown): HumanActionPayload {
  const o = payloadObject(p);
  const text = (v: unknown, n: number) => (typeof v === 'string' ? v.slice(0, n) : undefined);
  return { by: text(o.by, 100), reason: text(o.reason, 500), incidentId: text(o.incidentId, 100) };
}

function iso(ms: number | null | undefined): string | null {
  return ms == null ? null : new Date(ms).toISOString();
}

function initialState(): CarriedState {
  return {
    run: 0,
    phase: 'idle',
    restarts: [],
    lastAttemptAt: null,
    consecutiveFailures: 0,
    pause: null,
    firing: [],
    pendingAlert: null,
    approvalPending: false,
    skipPending: false,
    incident: null,
    exhaustionEscalated: false,
    lastEscalation: null,
    attempts: [],
    totals: { incidents: 0, restarts: 0, failures: 0, escalations: 0 },
    incidentSeq: 0,
    undelivered: [],
  };
}

interface HumanEvent {
  event: string;
  decision: string;
  reason: string;
  by: string | null;
  /** The phase when the signal arrived (the log line is written a step later). */
  phase?: Phase;
}

class ServiceEntity {
  private s: CarriedState;
  private readonly workflowId: string;
  private signalsThisRun = 0;
  private humanEvents: HumanEvent[] = [];
  private readonly outbox = new Map<string, EscalationPayload>();
  private lastSearchAttributes = '';

  constructor(private readonly input: ServiceWorkflowInput) {
    this.s = input.carried ? { ...initialState(), ...input.carried } : initialState();
    this.s.firing = migrateFiring(this.s.firing);
    this.workflowId = workflowIdFor(input.host, input.service);
  }

  // ---- messages -------------------------------------------------------------------------------

  installHandlers(): void {
    // Signals can come from anywhere (the Temporal UI, the CLI): read payloads defensively, so a
    // malformed one is ignored field by field instead of failing the workflow task.
    setHandler(alertFiringSignal, (p) => {
      const o = payloadObject(p);
      this.onFiring(alertRefs(o), typeof o.summary === 'string' ? o.summary : undefined);
    });
    setHandler(alertResolvedSignal, (p) => this.onResolved(payloadObject(p)));
    setHandler(approveSignal, (p) => this.onHuman('approve', humanPayload(p)));
    setHandler(skipSignal, (p) => this.onHuman('skip', humanPayload(p)));
    setHandler(pauseSignal, (p) => {
      const until = payloadObject(p).until;
      this.onPause(typeof until === 'string' ? until : null, humanPayload(p));
    });
    setHandler(resumeSignal, (p) => this.onHuman('resume', humanPayload(p)));
    setHandler(stateQuery, () => this.view());
  }

  private get firing(): AlertRef[] {
    return this.s.firing as AlertRef[];
  }

  private onFiring(refs: AlertRef[], summary: string | undefined): void {
    this.signalsThisRun++;
    const alerts = refs.length ? refs : [{ id: 'name:manual', name: 'manual' }];
    // Newest last; a repeated alert moves to the end; beyond the cap the oldest are forgotten.
    const ids = new Set(alerts.map((a) => a.id));
    const firing = [...this.firing.filter((f) => !ids.has(f.id)), ...alerts];
    if (firing.length > MAX_FIRING_ALERTS) {
      log.warn('too many distinct firing alerts for one service; forgetting the oldest', {
        kept: MAX_FIRING_ALERTS,
        dropped: firing.length - MAX_FIRING_ALERTS,
      });
    }
    this.s.firing = firing.slice(-MAX_FIRING_ALERTS);
    const n = union(
      [],
      alerts.map((a) => a.name),
    );
    const inc = this.s.incident;
    if (inc) {
      inc.duplicateAlerts++;
      inc.alertnames = addNames(inc.alertnames, n, MAX_INCIDENT_ALERTNAMES);
    } else {
      const prev = this.s.pendingAlert;
      this.s.pendingAlert = {
        alertnames: addNames(prev?.alertnames ?? [], n, MAX_INCIDENT_ALERTNAMES),
        summary: (summary ?? prev?.summary ?? null)?.slice(0, 300) ?? null,
      };
    }
  }

  /**
   * Identities stop exactly the alerts named; names (a hand-typed signal) stop every alert of those
   * names; neither stops them all. An alert remembered only by name (`name:X`, from a signal without
   * identities or a run from before them) stops when an identity of that name resolves and no
   * other alert of that name still fires.
   */
  private onResolved(p: Record<string, unknown>): void {
    this.signalsThisRun++;
    const refs = Array.isArray(p.alerts) ? alertRefs({ alerts: p.alerts }) : [];
    const names = cleanNames(p.alertnames);
    let firing: AlertRef[];
    if (refs.length) {
      const ids = new Set(refs.map((r) => r.id));
      firing = this.firing.filter((f) => !ids.has(f.id));
      const stillNamed = new Set(firing.filter((f) => !f.id.startsWith('name:')).map((f) => f.name));
      const resolvedNames = new Set(refs.map((r) => r.name));
      firing = firing.filter(
        (f) => !(f.id === `name:${f.name}` && resolvedNames.has(f.name) && !stillNamed.has(f.name)),
      );
    } else if (names.length) {
      firing = this.firing.filter((f) => !names.includes(f.name));
    } else {
      firing = [];
    }
    this.s.firing = firing;
    if (this.firing.length === 0 && !this.s.incident) this.s.pendingAlert = null;
  }

  private onPause(until: string | null, p: HumanActionPayload): void {
    this.signalsThisRun++;
    const untilMs = until ? Date.parse(until) : NaN;
    this.s.pause = { until: Number.isFinite(untilMs) ? untilMs : null, by: p.by ?? null, reason: p.reason ?? null };
    if (!this.s.incident) this.s.phase = 'paused';
    const forHow = this.s.pause.until ? `until ${iso(this.s.pause.until)}` : 'until resumed';
    this.recordHuman({
      event: 'paused',
      decision: 'pause',
      reason: `${p.reason ?? 'maintenance'} (${forHow})`,
      by: p.by ?? null,
    });
  }

  private onHuman(action: 'approve' | 'skip' | 'resume', p: HumanActionPayload): void {
    this.signalsThisRun++;
    const by = p.by ?? null;
    const why = p.reason ?? '';
    const open = this.s.incident?.id ?? null;
    if (action !== 'resume' && p.incidentId && p.incidentId !== open) {
      this.recordHuman({
        event: 'ignored-signal',
        decision: 'none',
        reason: `${action}: meant for incident ${p.incidentId}, which is not the open incident (${open ?? 'none'})`,
        by,
      });
      return;
    }
    if (action === 'approve') {
      if (this.canApprove()) {
        this.s.approvalPending = true;
        this.recordHuman({ event: 'approved', decision: 'restart-once', reason: why || 'approved', by });
      } else {
        this.recordHuman({ event: 'ignored-signal', decision: 'none', reason: 'approve: nothing to approve', by });
      }
    } else if (action === 'skip') {
      if (this.canSkip()) {
        this.s.skipPending = true;
        this.recordHuman({ event: 'skipped', decision: 'drop-incident', reason: why || 'skipped', by });
      } else {
        this.recordHuman({
          event: 'ignored-signal',
          decision: 'none',
          reason: 'skip: no incident in progress',
          by,
        });
      }
    } else if (this.s.pause) {
      this.s.pause = null;
      if (!this.s.incident) this.s.phase = 'idle';
      this.recordHuman({ event: 'resumed', decision: 'resume', reason: why || 'resumed', by });
    } else {
      this.recordHuman({ event: 'ignored-signal', decision: 'none', reason: 'resume: not paused', by });
    }
  }

  private recordHuman(e: Omit<HumanEvent, 'phase'>): void {
    this.humanEvents.push({ ...e, phase: this.s.phase });
  }

  private canApprove(): boolean {
    return this.s.incident != null && this.s.phase !== 'restarting' && this.s.phase !== 'verifying';
  }

  private canSkip(): boolean {
    return this.s.incident != null;
  }

  // ---- views ----------------------------------------------------------------------------------

  view(): ServiceStateView {
    const now = Date.now();
    const inc = this.s.incident;
    const policy = inc?.policy ?? null;
    const inWindow = restartsInWindow(this.s.restarts, now).sort((a, b) => a - b);
    return {
      workflowId: this.workflowId,
      host: this.input.host,
      service: this.input.service,
      phase: this.s.phase,
      status: statusOf(this.s.phase, inc != null),
      paused: this.s.pause != null,
      pausedUntil: iso(this.s.pause?.until),
      pauseReason: this.s.pause?.reason ?? null,
      firingAlerts: union(
        [],
        this.firing.map((f) => f.name),
      ),
      firing: this.firing,
      incident: inc && {
        id: inc.id,
        openedAt: iso(inc.openedAt)!,
        alertnames: inc.alertnames,
        summary: inc.summary,
        attempts: inc.attempts,
        duplicateAlerts: inc.duplicateAlerts,
        waitUntil: iso(inc.waitUntil),
      },
      consecutiveFailures: this.s.consecutiveFailures,
      restartsLastHour: inWindow.length,
      restartTimes: inWindow.map((t) => iso(t)!),
      cooldownUntil: policy ? iso(cooldownUntil(this.s, policy, now)) : null,
      budgetFreesAt: policy ? this.freesAtView(policy, now) : null,
      canApprove: this.canApprove(),
      canSkip: this.canSkip(),
      lastEscalation: this.s.lastEscalation && { ...this.s.lastEscalation, at: iso(this.s.lastEscalation.at)! },
      recentAttempts: this.s.attempts,
      totals: this.s.totals,
      policy,
      run: this.s.run,
      historyLength: workflowInfo().historyLength,
    };
  }

  private freesAtView(policy: Policy, now: number): string | null {
    const frees = budgetFreesAt(this.s.restarts, policy, now);
    return frees > now && Number.isFinite(frees) ? iso(frees) : null;
  }

  private syncSearchAttributes(): void {
    if (!this.input.searchAttributes) return;
    const status = statusOf(this.s.phase, this.s.incident != null);
    const key = `${this.s.phase}|${status}|${this.s.consecutiveFailures}`;
    if (key === this.lastSearchAttributes) return;
    // First call of a run: skip the upsert when start (or continue-as-new) already set these values.
    const first = this.lastSearchAttributes === '';
    this.lastSearchAttributes = key;
    const current = workflowInfo().typedSearchAttributes;
    if (
      !first ||
      current.get(SA_PHASE) !== this.s.phase ||
      current.get(SA_STATUS) !== status ||
      current.get(SA_FAILURES) !== this.s.consecutiveFailures ||
      current.get(SA_SERVICE) !== this.input.service
    ) {
      upsertSearchAttributes([
        { key: SA_SERVICE, value: this.input.service },
        { key: SA_HOST, value: this.input.host },
        { key: SA_PHASE, value: this.s.phase },
        { key: SA_STATUS, value: status },
        { key: SA_FAILURES, value: this.s.consecutiveFailures },
      ]);
    }
  }

  // ---- side effects -----------------------------------------------------------------------------

  private async audit(rec: Omit<AuditRecord, 'time' | 'host' | 'service' | 'workflowId'>): Promise<void> {
    const now = Date.now();
    const record: AuditRecord = {
      time: new Date(now).toISOString(),
      host: this.input.host,
      service: this.input.service,
      workflowId: this.workflowId,
      incidentId: this.s.incident?.id ?? null,
      phase: this.s.phase,
      status: statusOf(this.s.phase, this.s.incident != null),
      consecutiveFailures: this.s.consecutiveFailures,
      restartsLastHour: restartsInWindow(this.s.restarts, now).length,
      ...rec,
    };
    try {
      await auditLocal.audit(record);
    } catch (err) {
      // The audit log must not stop remediation; the decision is still in this workflow's history.
      log.error('audit log write failed', { event: record.event, error: (err as Error).message });
    }
  }

  private async flushHumanEvents(): Promise<void> {
    while (this.humanEvents.length) {
      const e = this.humanEvents.shift()!;
      await this.audit({
        event: e.event,
        decision: e.decision,
        reason: e.reason,
        by: e.by,
        ...(e.phase ? { phase: e.phase } : {}),
      });
    }
  }

  /** Starts durable delivery and goes on: escalation never blocks remediation. */
  private async escalate(event: EscalationEvent, message: string): Promise<void> {
    const now = Date.now();
    this.s.totals.escalations++;
    this.s.lastEscalation = { event, at: now, message };
    const last = this.s.attempts[this.s.attempts.length - 1];
    const payload: EscalationPayload = {
      id: `${this.workflowId}/${this.s.incident?.id ?? 'none'}/${event}/${this.s.totals.escalations}`,
      event,
      host: this.input.host,
      service: this.input.service,
      workflowId: this.workflowId,
      incidentId: this.s.incident?.id ?? null,
      consecutiveFailures: this.s.consecutiveFailures,
      restartsLastHour: restartsInWindow(this.s.restarts, now).length,
      message,
      time: new Date(now).toISOString(),
      lastAttempt: last ? { result: last.result, reason: last.reason, at: last.at } : null,
    };
    this.send(payload);
    await this.audit({ event: 'escalated', decision: 'escalate', reason: message, escalation: event });
  }

  private send(payload: EscalationPayload): void {
    this.outbox.set(payload.id, payload);
    delivery.escalate(payload).then(
      (r) => {
        this.outbox.delete(payload.id);
        if (r.refused?.length) log.error('escalation refused by a receiver', { id: payload.id, refused: r.refused });
      },
      (err: unknown) => log.error('escalation delivery gave up', { id: payload.id, error: (err as Error).message }),
    );
  }

  // ---- the loop ---------------------------------------------------------------------------------

  private continueAsNewWanted(): boolean {
    const info = workflowInfo();
    return (
      info.continueAsNewSuggested ||
      info.historyLength >= (this.input.maxHistoryEvents ?? DEFAULT_MAX_HISTORY_EVENTS) ||
      this.signalsThisRun >= (this.input.maxSignalsPerRun ?? DEFAULT_MAX_SIGNALS_PER_RUN)
    );
  }

  /** Waits until `ready`, the deadline, a human event to record, or a reason to continue-as-new. */
  private async wait(ready: () => boolean, until: number | null): Promise<void> {
    const wake = () => ready() || this.humanEvents.length > 0 || this.continueAsNewWanted();
    if (wake()) return;
    if (until == null) {
      await condition(wake);
      return;
    }
    const ms = until - Date.now();
    if (ms > 0) await condition(wake, ms);
  }

  async run(): Promise<void> {
    for (const p of this.s.undelivered ?? []) this.send(p);
    this.s.undelivered = [];
    for (;;) {
      await this.flushHumanEvents();
      if (!this.s.incident) this.s.phase = this.s.pause ? 'paused' : 'idle';
      this.syncSearchAttributes();
      if (WAIT_PHASES.includes(this.s.phase) && this.continueAsNewWanted()) {
        await condition(allHandlersFinished);
        await this.flushHumanEvents();
        this.s.restarts = pruneRestarts(this.s.restarts, Date.now());
        const undelivered = [...this.outbox.values()];
        if (undelivered.length > MAX_UNDELIVERED_ESCALATIONS) {
          log.error('too many undelivered escalations to carry; dropping the oldest', {
            dropped: undelivered.length - MAX_UNDELIVERED_ESCALATIONS,
          });
        }
        this.s.undelivered = undelivered.slice(-MAX_UNDELIVERED_ESCALATIONS);
        this.s.run++;
        await continueAsNew<typeof selfhealService>({ ...this.input, carried: this.s });
      }
      await this.step();
    }
  }

  private async step(): Promise<void> {
    const inc = this.s.incident;
    if (!inc) return this.idle();
    if (this.s.skipPending) return this.close('skipped', 'skipped by a human', { resetFailures: true });
    switch (this.s.phase) {
      case 'validating':
        return this.validating(inc);
      case 'checking':
        return this.checking(inc);
      case 'cooldown':
      case 'exhausted':
        return this.waitingForSlot(inc);
      case 'awaiting-approval':
      case 'escalated':
        return this.waitingForHuman(inc);
      case 'paused':
        return this.heldByPause();
      case 'restarting':
      case 'verifying':
        return this.attempt(inc);
      default:
        this.s.phase = 'checking';
    }
  }

  private expirePauseIfDue(): boolean {
    const until = this.s.pause?.until;
    if (until != null && Date.now() >= until) {
      this.s.pause = null;
      this.recordHuman({ event: 'resumed', decision: 'resume', reason: 'pause expired', by: null });
      return true;
    }
    return false;
  }

  private async idle(): Promise<void> {
    if (this.expirePauseIfDue()) return;
    if (!this.s.pendingAlert) {
      await this.wait(() => this.s.pendingAlert != null, this.s.pause?.until ?? null);
      return;
    }
    await this.openIncident();
  }

  private async openIncident(): Promise<void> {
    const alert = this.s.pendingAlert!;
    this.s.pendingAlert = null;
    let resolved: Awaited<ReturnType<ControlActivities['resolveService']>>;
    try {
      resolved = await local.resolveService({ host: this.input.host, service: this.input.service });
    } catch (err) {
      // Cannot happen short of a broken control worker; keep the alert and try again later.
      log.error('cannot read the service configuration; retrying in 1 minute', { error: (err as Error).message });
      this.s.pendingAlert = alert;
      await sleep(60_000);
      return;
    }
    if (!resolved.configured) {
      await this.audit({ event: 'not-configured', decision: 'no-restart', reason: resolved.reason });
      return;
    }
    const now = Date.now();
    // Failures survive a recovery on their own, but not a quiet hour before the next incident.
    if (patched(PATCH_FAILURES_SURVIVE_RECOVERY)) {
      this.s.consecutiveFailures = failuresInForce(this.s.consecutiveFailures, this.s.lastFailureAt, now);
    }
    this.s.incidentSeq++;
    this.s.totals.incidents++;
    this.s.incident = {
      id: `inc-${this.s.incidentSeq}`,
      openedAt: now,
      alertnames: alert.alertnames,
      summary: alert.summary,
      attempts: 0,
      duplicateAlerts: 0,
      waitUntil: now + resolved.policy.validationWindowMs,
      policy: resolved.policy,
      unit: resolved.unit,
      manager: resolved.manager,
      hostUnreachableEscalated: false,
      approvalRequested: false,
    };
    this.s.phase = 'validating';
    await this.audit({
      event: 'incident-opened',
      decision: 'validate',
      reason: `${alert.alertnames.join(', ')} firing; validating for ${formatDuration(resolved.policy.validationWindowMs)}`,
      detail: alert.summary ?? undefined,
    });
  }

  private async validating(inc: CarriedIncident): Promise<void> {
    await this.wait(() => this.s.skipPending || this.s.approvalPending || this.firing.length === 0, inc.waitUntil);
    if (this.s.skipPending) return;
    if (this.firing.length === 0) {
      await this.audit({
        event: 'validation-cancelled',
        decision: 'no-restart',
        reason: 'alert resolved during the validation window',
      });
      return this.close('resolved', 'resolved during validation', {});
    }
    if (this.s.approvalPending || Date.now() >= (inc.waitUntil ?? 0)) {
      inc.waitUntil = null;
      this.s.phase = 'checking';
    }
  }

  private hostActivities(inc: CarriedIncident) {
    const p = inc.policy;
    const common = { taskQueue: hostTaskQueue(this.input.host), scheduleToStartTimeout: p.hostTimeoutMs };
    const nonRetryableErrorTypes = ['InvalidUnitName', 'ServiceNotAllowed', 'RestartFailed'];
    return {
      check: proxyActivities<HostActivities>({
        ...common,
        startToCloseTimeout: '30s',
        retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes },
      }).checkService,
      // One call per Temporal activity: the workflow retries it (same attempt id) and so knows
      // whether any call started, i.e. whether systemctl may have run.
      restartOnce: proxyActivities<HostActivities>({
        ...common,
        startToCloseTimeout: '6m',
        heartbeatTimeout: '20s',
        retry: { maximumAttempts: 1 },
      }).restartService,
      // Runs from before PATCH_RESTART_RETRY: Temporal retries. Re-runs are safe: the activity
      // detects a restart already done for the same attempt id.
      restart: proxyActivities<HostActivities>({
        ...common,
        startToCloseTimeout: '6m',
        heartbeatTimeout: '20s',
        retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes },
      }).restartService,
      verify: proxyActivities<HostActivities>({
        ...common,
        startToCloseTimeout: p.verifyTimeoutMs + 60_000,
        heartbeatTimeout: '30s',
        retry: { maximumAttempts: 2, initialInterval: '1s', nonRetryableErrorTypes },
      }).verifyService,
    };
  }

  private ref() {
    return { workflowId: this.workflowId, host: this.input.host, service: this.input.service };
  }

  private async checking(inc: CarriedIncident): Promise<void> {
    const p = inc.policy;
    if (!this.s.approvalPending) {
      let unitActive: boolean;
      let state: string;
      try {
        const st = await this.hostActivities(inc).check(this.ref());
        unitActive = st.activeState === 'active';
        state = `${st.activeState}/${st.subState}`;
      } catch (err) {
        const f = readFailure(err, false);
        inc.attempts++;
        this.s.lastAttemptAt = Date.now();
        await this.audit({ event: 'recheck-failed', decision: 'no-restart', reason: f.reason, detail: f.detail });
        return this.finishAttempt(inc, {
          ok: false,
          ...f,
          approved: false,
          id: `${inc.id}-${inc.attempts}`,
          startedAt: Date.now(),
        });
      }
      const promFiring = unitActive
        ? await local
            .alertStillFiring({ host: this.input.host, service: this.input.service, alertnames: inc.alertnames })
            .catch(() => null)
        : null;
      if (!stillUnhealthy({ unitActive, alertStillFiring: promFiring, firingSignalled: this.firing.length > 0 })) {
        if (!patched(PATCH_FAILURES_SURVIVE_RECOVERY)) this.s.consecutiveFailures = 0;
        await this.audit({
          event: 'recheck',
          decision: 'no-restart',
          reason: `healthy at re-check (unit ${state}${promFiring === false ? ', alert no longer firing' : ''})`,
        });
        return this.close('recovered', 'healthy at re-check', {});
      }
      await this.audit({
        event: 'recheck',
        decision: 'confirmed',
        reason: unitActive
          ? `unit ${state} but ${promFiring ? 'Prometheus still reports the alert firing' : 'the alert is still firing'}`
          : `unit ${state}`,
      });
    }
    const now = Date.now();
    if (budgetFreesAt(this.s.restarts, p, now) <= now) this.s.exhaustionEscalated = false;
    const d = decideRestart({
      state: this.s,
      policy: p,
      now,
      approved: this.s.approvalPending,
      paused: this.s.pause != null,
    });
    switch (d.kind) {
      case 'restart':
        this.s.phase = 'restarting';
        return;
      case 'dry-run':
        this.s.approvalPending = false;
        await this.audit({ event: 'decision', decision: 'would-restart', reason: 'dry-run mode: not acting' });
        return this.close('dry-run', 'dry-run: decided and logged, not acted on', {});
      case 'paused':
        this.s.phase = 'paused';
        await this.audit({ event: 'decision', decision: 'hold', reason: 'paused for maintenance' });
        return;
      case 'cooldown':
        this.s.phase = 'cooldown';
        inc.waitUntil = d.until;
        await this.audit({
          event: 'decision',
          decision: 'wait-cooldown',
          reason: `cooldown: last attempt less than ${formatDuration(p.cooldownMs)} ago; next try at ${iso(d.until)}`,
        });
        return;
      case 'exhausted': {
        this.s.phase = 'exhausted';
        inc.waitUntil = d.until;
        const n = restartsInWindow(this.s.restarts, now).length;
        const message = `restart budget used up: ${n} restarts in the last hour (limit ${p.maxRestartsPerHour}); no restart ${d.until ? `until ${iso(d.until)}` : 'at all'} unless approved`;
        await this.audit({ event: 'decision', decision: 'refuse-budget', reason: message });
        if (!this.s.exhaustionEscalated) {
          this.s.exhaustionEscalated = true;
          await this.escalate('SelfHealingExhausted', `${this.input.service} on ${this.input.host}: ${message}`);
        }
        return;
      }
      case 'needs-approval':
        this.s.phase = 'awaiting-approval';
        await this.audit({
          event: 'decision',
          decision: 'await-approval',
          reason: 'approval mode: a human must approve the restart',
        });
        if (!inc.approvalRequested) {
          inc.approvalRequested = true;
          await this.escalate(
            'ApprovalRequired',
            `${this.input.service} on ${this.input.host} is down (${inc.alertnames.join(', ')}); approve the restart with: selfheal approve ${this.input.service} --host ${this.input.host}`,
          );
        }
        return;
    }
  }

  private async waitingForSlot(inc: CarriedIncident): Promise<void> {
    await this.wait(() => this.s.skipPending || this.s.approvalPending || this.firing.length === 0, inc.waitUntil);
    if (this.s.skipPending) return;
    if (this.firing.length === 0) {
      return this.close('resolved', 'alert resolved while waiting', { recovered: true });
    }
    if (this.s.approvalPending || Date.now() >= (inc.waitUntil ?? 0)) {
      inc.waitUntil = null;
      this.s.phase = 'checking';
    }
  }

  private async waitingForHuman(inc: CarriedIncident): Promise<void> {
    await this.wait(() => this.s.skipPending || this.s.approvalPending || this.firing.length === 0, null);
    if (this.s.skipPending) return;
    if (this.s.approvalPending) {
      this.s.phase = 'restarting';
      return;
    }
    if (this.firing.length === 0) {
      return this.close(
        'resolved',
        `alert resolved while ${inc.approvalRequested ? 'awaiting approval' : 'escalated'}`,
        {
          recovered: true,
        },
      );
    }
  }

  private async heldByPause(): Promise<void> {
    await this.wait(
      () => this.s.pause == null || this.s.skipPending || this.s.approvalPending || this.firing.length === 0,
      this.s.pause?.until ?? null,
    );
    this.expirePauseIfDue();
    if (this.s.skipPending) return;
    if (this.firing.length === 0) return this.close('resolved', 'alert resolved while paused', {});
    if (this.s.pause == null || this.s.approvalPending) this.s.phase = 'checking';
  }

  private async attempt(inc: CarriedIncident): Promise<void> {
    const approved = this.s.approvalPending;
    this.s.approvalPending = false;
    inc.attempts++;
    const id = `${inc.id}-${inc.attempts}`;
    const startedAt = Date.now();
    this.s.lastAttemptAt = startedAt;
    this.s.phase = 'restarting';
    this.syncSearchAttributes();
    await this.audit({
      event: 'restart',
      decision: 'restart',
      reason: approved ? 'approved by a human' : 'confirmed unhealthy after validation',
      attemptId: id,
    });
    const host = this.hostActivities(inc);
    let beforeFingerprint: string;
    try {
      const r = patched(PATCH_RESTART_RETRY)
        ? await this.restartWithRetries(host.restartOnce, id)
        : await host.restart({ ...this.ref(), attemptId: id });
      beforeFingerprint = r.beforeFingerprint;
      if (r.outcome === 'already-restarted')
        log.warn('host reported the restart already done for this attempt', { id });
    } catch (err) {
      const f = err instanceof RestartCallsFailed ? err.reading : readFailure(err, true);
      if (f.restarted) this.s.restarts.push(startedAt);
      return this.finishAttempt(inc, { ok: false, ...f, approved, id, startedAt });
    }
    this.s.restarts.push(startedAt);
    this.s.phase = 'verifying';
    this.syncSearchAttributes();
    let ok: boolean;
    let reason: string;
    let detail: string;
    try {
      const v = await host.verify({
        ...this.ref(),
        beforeFingerprint,
        timeoutMs: inc.policy.verifyTimeoutMs,
        stableMs: inc.policy.verifyStableMs,
      });
      ({ ok, reason, detail } = v);
    } catch (err) {
      const f = readFailure(err, true);
      ({ reason, detail } = f);
      ok = false;
    }
    if (ok && inc.policy.verifyAlertClears) {
      const remaining = Math.max(5_000, inc.policy.verifyTimeoutMs - (Date.now() - startedAt));
      const clear = proxyActivities<ControlActivities>({
        startToCloseTimeout: remaining + 30_000,
        heartbeatTimeout: '1m',
        retry: { maximumAttempts: 2 },
      }).waitForAlertClear;
      const c = await clear({
        host: this.input.host,
        service: this.input.service,
        alertnames: inc.alertnames,
        timeoutMs: remaining,
      }).catch((err: Error) => ({ cleared: false, detail: `could not check Prometheus: ${err.message}` }));
      if (!c.cleared) {
        ok = false;
        reason = 'alert-still-firing';
        detail = c.detail;
      }
    }
    return this.finishAttempt(inc, {
      ok,
      reason,
      detail,
      restarted: true,
      approved,
      id,
      startedAt,
    });
  }

  /**
   * Calls the host's restart up to three times with the same attempt id (the host never restarts
   * twice for one id). Any call that started may have run systemctl, so the attempt counts as a
   * restart even when a later call never reaches the host (schedule-to-start timeout).
   */
  private async restartWithRetries(
    restartOnce: HostActivities['restartService'],
    attemptId: string,
  ): Promise<Awaited<ReturnType<HostActivities['restartService']>>> {
    let mayHaveRun = false;
    for (let call = 1; ; call++) {
      try {
        return await restartOnce({ ...this.ref(), attemptId });
      } catch (err) {
        const reading = readFailure(err, true);
        mayHaveRun ||= callStarted(err) && reading.restarted;
        if (call >= 3 || !worthRetrying(err)) {
          throw new RestartCallsFailed({ ...reading, restarted: mayHaveRun || reading.restarted });
        }
        log.warn('restart call failed; calling again with the same attempt id', {
          attemptId,
          call,
          error: reading.detail,
        });
        await sleep(2_000 * call);
      }
    }
  }

  private async finishAttempt(
    inc: CarriedIncident,
    a: {
      ok: boolean;
      reason: string;
      detail: string;
      restarted: boolean;
      approved: boolean;
      id: string;
      startedAt: number;
    },
  ): Promise<void> {
    const now = Date.now();
    this.s.restarts = pruneRestarts(this.s.restarts, now);
    const next = afterAttempt(this.s.consecutiveFailures, a.ok, inc.policy);
    this.s.consecutiveFailures = next.consecutiveFailures;
    this.s.lastFailureAt = a.ok ? null : now;
    const record: AttemptRecord = {
      id: a.id,
      at: iso(a.startedAt)!,
      result: a.ok ? 'success' : 'failure',
      reason: a.reason,
      restarted: a.restarted,
      approved: a.approved,
      durationMs: now - a.startedAt,
      detail: a.detail.slice(0, 300),
    };
    this.s.attempts = [...this.s.attempts, record].slice(-RECENT_ATTEMPTS);
    if (a.restarted) this.s.totals.restarts++;
    if (!a.ok) this.s.totals.failures++;
    await this.audit({
      event: 'attempt-finished',
      decision: a.ok ? 'recovered' : 'failed',
      reason: a.reason,
      detail: a.detail.slice(0, 500),
      attemptId: a.id,
      result: record.result,
      restarted: a.restarted,
    });
    if (a.ok) return this.close('verified', `recovered after restart (${a.detail})`, {});

    if (a.reason === 'host-unreachable' && !inc.hostUnreachableEscalated) {
      inc.hostUnreachableEscalated = true;
      await this.escalate(
        'HostUnreachable',
        `no selfheal worker is serving host ${this.input.host} (queue ${hostTaskQueue(this.input.host)}); cannot act on ${this.input.service}`,
      );
    }
    if (a.reason === 'host-state-unwritable' && !inc.hostStateEscalated) {
      inc.hostStateEscalated = true;
      await this.escalate('HostStateUnwritable', `${this.input.service} on ${this.input.host}: ${a.detail}`);
    }
    if (next.escalate) {
      this.s.phase = 'escalated';
      await this.escalate(
        'ConsecutiveFailures',
        `${this.input.service} on ${this.input.host}: ${this.s.consecutiveFailures} consecutive failed attempts (limit ${inc.policy.maxConsecutiveFailures}); last: ${a.reason}: ${a.detail}. Waiting for a human: selfheal approve|skip ${this.input.service} --host ${this.input.host}`,
      );
      return;
    }
    const until = cooldownUntil(this.s, inc.policy, now);
    if (until != null) {
      this.s.phase = 'cooldown';
      inc.waitUntil = until;
    } else this.s.phase = 'checking';
  }

  /**
   * Ends the incident. `resetFailures`: a human took over (skip). `recovered`: the service came back
   * on its own; runs from before PATCH_FAILURES_SURVIVE_RECOVERY reset the failure count then.
   */
  private async close(
    outcome: string,
    reason: string,
    opts: { resetFailures?: boolean; recovered?: boolean },
  ): Promise<void> {
    if (opts.resetFailures || (opts.recovered && !patched(PATCH_FAILURES_SURVIVE_RECOVERY))) {
      this.s.consecutiveFailures = 0;
    }
    await this.audit({ event: 'incident-closed', decision: outcome, reason });
    this.s.incident = null;
    this.s.skipPending = false;
    this.s.approvalPending = false;
    // Alerts that arrived during the incident belonged to it.
    this.s.pendingAlert = null;
    this.s.phase = this.s.pause ? 'paused' : 'idle';
  }
}

/** The entity workflow of one service on one host. */
export async function selfhealService(input: ServiceWorkflowInput): Promise<void> {
  const entity = new ServiceEntity(input);
  entity.installHandlers();
  await entity.run();
}
