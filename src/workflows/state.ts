// The entity's state: what is carried through continue-as-new (plain JSON), what the message
// handlers do to it (the `state` query's view of it is view.ts), and the one wait that every step of an incident
// uses (`waitFor`), which says why it woke.
import { CancellationScope, condition, log, sleep, workflowInfo } from '@temporalio/workflow';
import type { Phase } from '../policy/policy';
import {
  AUDIT_EVENTS,
  MAX_FIRING_ALERTS,
  MAX_INCIDENT_ALERTNAMES,
  workflowIdFor,
  type AlertRef,
  type AuditEvent,
  type CarriedState,
  type HumanActionPayload,
  type ServiceWorkflowInput,
} from './definitions';
import { FiredClock } from './clock';
import type { FleetAnswer } from './fleet-definitions';
import { alertRefs, cleanNames, migrateFiring, union } from './payloads';

// Changes to the command sequence, each behind patched() so that recorded histories replay.
/** The workflow retries a restart call itself, so it knows whether any call may have run systemctl. */
export const PATCH_RESTART_RETRY = 'restart-retried-by-workflow';
/** A service recovering on its own does not reset consecutive failures (a verified restart or skip does). */
export const PATCH_FAILURES_SURVIVE_RECOVERY = 'failures-survive-recovery';
/**
 * Fleet safety: every restart asks the fleet coordinator first (breaker, concurrency, dependencies),
 * honours Alertmanager silences, and flap detection. Decided once at the start of a run (service.ts).
 */
export const PATCH_FLEET_SAFETY = 'fleet-safety';
/**
 * Escalations still in delivery finish (bounded wait) before the run continues-as-new. Before, one
 * started in the task that continued-as-new was orphaned and carried, so it went out twice; on the
 * time-skipping test server an orphaned activity never releases its time lock, and a simulation
 * then ran in wall time ("hung").
 */
export const PATCH_DELIVER_BEFORE_CONTINUE = 'deliveries-settle-before-continue-as-new';
/**
 * A wait whose timer fired is over. Before, the wait compared `Date.now()` with its deadline after
 * the timer fired, and the workflow clock is not always the task's time: a worker that picked up the
 * timer-fired task with the whole history to replay read the clock of the task before (the complete
 * time of its last local activity, 2 s earlier) and started a second timer where a replay went on
 * (test/histories/stale-clock-validation-timer.json, and README in test/histories/unreplayable). A
 * worker whose clock runs ahead of the server's does the same (local activities' complete times
 * come from the worker's clock, timers fire by the server's).
 */
export const PATCH_TIMER_ENDS_WAIT = 'wait-ends-when-its-timer-fires';
/**
 * Every patch, decided in the first task of each run (service.ts). Decided there, a new run records
 * its markers in its first task, and each later patched() call returns the same cached answer. First
 * decided after a local activity instead, the marker can land one workflow task after the point where
 * a replay asks (a local activity that outlives its task splits it), and the replay fails.
 * Runs started before this kept their markers where they were and still replay: a replay decides
 * nothing at the start when the first task has no marker, so the later calls answer as they did.
 */
export const PATCHES: readonly string[] = [
  PATCH_FLEET_SAFETY,
  PATCH_RESTART_RETRY,
  PATCH_FAILURES_SURVIVE_RECOVERY,
  PATCH_DELIVER_BEFORE_CONTINUE,
  PATCH_TIMER_ENDS_WAIT,
];

export const DEFAULT_MAX_HISTORY_EVENTS = 2_000;
export const DEFAULT_MAX_SIGNALS_PER_RUN = 1_000;
export const RECENT_ATTEMPTS = 10;

/** Phases in which the workflow waits: the only ones it continues-as-new in. */
export const WAIT_PHASES: readonly Phase[] = [
  'idle',
  'paused',
  'validating',
  'cooldown',
  'exhausted',
  'awaiting-approval',
  'escalated',
  'held',
];

/** A human's signal, recorded when it arrives and written to the audit log at the next step. */
export interface HumanEvent {
  event: AuditEvent;
  decision: string;
  reason: string;
  by: string | null;
  /** The phase when the signal arrived. */
  phase?: Phase;
}

export function initialState(): CarriedState {
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

export function iso(ms: number | null | undefined): string | null {
  return ms == null ? null : new Date(ms).toISOString();
}

/** Adds names to a bounded list: the first ones are kept, so an incident keeps what opened it. */
function addNames(a: readonly string[], b: readonly string[], max: number): string[] {
  const out = [...a];
  for (const n of b) if (!out.includes(n) && out.length < max) out.push(n);
  return out;
}

/** Why a wait ended. */
export type Wake = 'deadline' | 'resolved' | 'skip' | 'approve' | 'unpaused' | 'granted' | 'continue-as-new';

/** Everything the entity knows: the carried state plus what one run keeps to itself. */
export class EntityState {
  readonly s: CarriedState;
  readonly workflowId: string;
  signalsThisRun = 0;
  readonly humanEvents: HumanEvent[] = [];
  /** Whether this run takes part in fleet safety (patched() once, at the start of the run). */
  fleet = false;
  /** On when a wait ends when its timer fires (PATCH_TIMER_ENDS_WAIT, decided at the start of the run). */
  readonly clock = new FiredClock();

  /** The time decisions use (see FiredClock). */
  now(): number {
    return this.clock.now();
  }

  /**
   * Waits for `wake` or for the time `until`, on a timer (none when it is already past); a timer that
   * fires records its deadline as passed (see now()).
   */
  async waitUntil(wake: () => boolean, until: number, summary: () => string): Promise<void> {
    if (until - this.now() <= 0) return;
    // condition(wake, timeout) as the SDK builds it (the same timer, cancelled when woken first), but
    // knowing whether the timer fired: a wake that lands in the activation where the timer fires
    // (signals come first) makes condition() answer true, and the deadline must still count as passed.
    // That needs the activation's jobs run as one batch (the SDK's flag for runs of SDK 1.11 and
    // later); older runs handle signals first, cancel the timer, and read as before.
    let fired = false;
    await CancellationScope.cancellable(async () => {
      try {
        await Promise.race([
          sleep(until - this.now(), { summary: summary() }).then(() => {
            fired = true;
          }),
          condition(wake),
        ]);
      } finally {
        CancellationScope.current().cancel();
      }
    });
    if (fired) this.clock.fired(until);
  }
  /** The coordinator's last answer for the open incident. */
  fleetAnswer: FleetAnswer | null = null;

  constructor(readonly input: ServiceWorkflowInput) {
    this.s = input.carried ? { ...initialState(), ...input.carried } : initialState();
    this.s.firing = migrateFiring(this.s.firing);
    this.workflowId = workflowIdFor(input.host, input.service);
  }

  get firing(): AlertRef[] {
    return this.s.firing as AlertRef[];
  }

  // ---- messages: each changes the state and nothing else ------------------------------------------

  onFiring(refs: AlertRef[], summary: string | undefined): void {
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
    const names = union(
      [],
      alerts.map((a) => a.name),
    );
    const inc = this.s.incident;
    if (inc) {
      inc.duplicateAlerts++;
      inc.alertnames = addNames(inc.alertnames, names, MAX_INCIDENT_ALERTNAMES);
    } else {
      const prev = this.s.pendingAlert;
      this.s.pendingAlert = {
        alertnames: addNames(prev?.alertnames ?? [], names, MAX_INCIDENT_ALERTNAMES),
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
  onResolved(p: Record<string, unknown>): void {
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

  /** The coordinator's answer: kept if it is for the open incident; a grant holds a restart slot for it. */
  onFleetAnswer(a: FleetAnswer): void {
    const inc = this.s.incident;
    if (!inc || !a || a.incidentId !== inc.id) return;
    this.fleetAnswer = a;
    if (a.decision === 'grant') inc.granted = true;
    else if (inc.held && a.reason && inc.held.reason !== 'silenced' && inc.held.reason !== 'flapping') {
      inc.held = { ...inc.held, reason: a.reason, detail: a.detail ?? '' };
    }
  }

  onPause(until: unknown, p: HumanActionPayload): void {
    this.signalsThisRun++;
    const untilMs = typeof until === 'string' ? Date.parse(until) : NaN;
    this.s.pause = { until: Number.isFinite(untilMs) ? untilMs : null, by: p.by ?? null, reason: p.reason ?? null };
    if (!this.s.incident) this.s.phase = 'paused';
    const forHow = this.s.pause.until ? `until ${iso(this.s.pause.until)}` : 'until resumed';
    this.recordHuman(AUDIT_EVENTS.paused, 'pause', `${p.reason ?? 'maintenance'} (${forHow})`, p.by);
  }

  onHuman(action: 'approve' | 'skip' | 'resume', p: HumanActionPayload): void {
    this.signalsThisRun++;
    const why = p.reason ?? '';
    const open = this.s.incident?.id ?? null;
    const ignored = (reason: string) => this.recordHuman(AUDIT_EVENTS.ignoredSignal, 'none', reason, p.by);
    if (action !== 'resume' && p.incidentId && p.incidentId !== open) {
      return ignored(
        `${action}: meant for incident ${p.incidentId}, which is not the open incident (${open ?? 'none'})`,
      );
    }
    if (action === 'approve') {
      if (!this.canApprove()) return ignored('approve: nothing to approve');
      this.s.approvalPending = true;
      this.recordHuman(AUDIT_EVENTS.approved, 'restart-once', why || 'approved', p.by);
    } else if (action === 'skip') {
      if (!this.canSkip()) return ignored('skip: no incident in progress');
      this.s.skipPending = true;
      this.recordHuman(AUDIT_EVENTS.skipped, 'drop-incident', why || 'skipped', p.by);
    } else {
      if (!this.s.pause) return ignored('resume: not paused');
      this.s.pause = null;
      if (!this.s.incident) this.s.phase = 'idle';
      this.recordHuman(AUDIT_EVENTS.resumed, 'resume', why || 'resumed', p.by);
    }
  }

  recordHuman(event: AuditEvent, decision: string, reason: string, by: string | null | undefined): void {
    this.humanEvents.push({ event, decision, reason, by: by ?? null, phase: this.s.phase });
  }

  /** Ends a timed pause whose time has come; true when it did. */
  expirePauseIfDue(): boolean {
    const until = this.s.pause?.until;
    if (until != null && this.now() >= until) {
      this.s.pause = null;
      this.recordHuman(AUDIT_EVENTS.resumed, 'resume', 'pause expired', null);
      return true;
    }
    return false;
  }

  canApprove(): boolean {
    return this.s.incident != null && this.s.phase !== 'restarting' && this.s.phase !== 'verifying';
  }

  canSkip(): boolean {
    return this.s.incident != null;
  }

  continueAsNewWanted(): boolean {
    const info = workflowInfo();
    return (
      info.continueAsNewSuggested ||
      info.historyLength >= (this.input.maxHistoryEvents ?? DEFAULT_MAX_HISTORY_EVENTS) ||
      this.signalsThisRun >= (this.input.maxSignalsPerRun ?? DEFAULT_MAX_SIGNALS_PER_RUN)
    );
  }

  // ---- the one wait -----------------------------------------------------------------------------

  /**
   * Waits for the first of `on` (in that order of precedence), the deadline, or a reason to
   * continue-as-new; a pending skip always comes first. Each round begins at a step boundary
   * (`boundary`: write humans' decisions to the audit log, publish the phase), and a human signal
   * that changes nothing ends the round, so its decision is recorded as it happens.
   */
  async waitFor(
    on: readonly Exclude<Wake, 'deadline' | 'skip' | 'continue-as-new'>[],
    deadline: () => number | null,
    boundary: () => Promise<void>,
    timerSummary: () => string,
  ): Promise<Wake> {
    const pending = (): Wake | null => {
      for (const w of on) {
        if (w === 'resolved' && this.firing.length === 0) return w;
        if (w === 'approve' && this.s.approvalPending) return w;
        if (w === 'unpaused' && this.s.pause == null) return w;
        if (w === 'granted' && this.s.incident?.granted) return w;
      }
      return null;
    };
    for (;;) {
      await boundary();
      if (WAIT_PHASES.includes(this.s.phase) && this.continueAsNewWanted()) return 'continue-as-new';
      if (this.s.skipPending) return 'skip';
      const wake = () =>
        this.s.skipPending || pending() != null || this.humanEvents.length > 0 || this.continueAsNewWanted();
      const until = deadline();
      if (!wake()) {
        if (until == null) await condition(wake);
        else await this.waitUntil(wake, until, timerSummary);
      }
      if (on.includes('unpaused')) this.expirePauseIfDue();
      if (this.s.skipPending) continue; // recorded at the next boundary, then returned
      const w = pending();
      if (w) return w;
      if (until != null && this.now() >= until) return 'deadline';
    }
  }
}
