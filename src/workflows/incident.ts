// One incident of one service, from the alert to its close, as DESIGN.md tells it:
//   open → 1. validate → loop { 2. re-check, decide → wait for a slot | a human | the end of a pause
//                               | 3. restart on the host, 4. verify → 5. escalate or try again } → close
// Each step starts at a boundary (humans' decisions audited, phase published, a skip ends it);
// waits go through the one `waitFor`, which says why it woke. A run that continued-as-new picks an
// open incident up at its wait (validating, a slot, a human, a pause) from the carried phase.
import { patched } from '@temporalio/workflow';
import { formatDuration } from '../policy/duration';
import { budgetFreesAt, decideRestart, restartsInWindow, stillUnhealthy, type Phase } from '../policy/policy';
import { finishAttempt, restartAndVerify } from './attempt';
import { gate, hold, notifyFleet, releaseSlot, waitHeld } from './gate';
import { AUDIT_EVENTS, type CarriedIncident } from './definitions';
import { Effects } from './effects';
import { hostActivities, readFailure, type HostCalls } from './host-calls';
import { iso, PATCH_FAILURES_SURVIVE_RECOVERY, type EntityState } from './state';

type Step = 'validate' | 'recheck' | 'gate' | 'restart' | 'wait-slot' | 'wait-human' | 'wait-pause' | 'wait-held';
export type Ending = 'closed' | 'continue-as-new';
export type Next = Step | Ending;

/** What the attempt steps (attempt.ts) use of the incident. */
export interface IncidentContext {
  readonly e: EntityState;
  readonly fx: Effects;
  readonly inc: CarriedIncident;
  readonly host: HostCalls;
  readonly where: string;
  boundary(): Promise<boolean>;
  skipped(): Promise<Next>;
  close(outcome: string, reason: string, opts: { resetFailures?: boolean; recovered?: boolean }): Promise<'closed'>;
}

/** Where an open incident picks up, from the phase it was carried in. */
export function resumeAt(phase: Phase): Step {
  switch (phase) {
    case 'validating':
      return 'validate';
    case 'cooldown':
    case 'exhausted':
      return 'wait-slot';
    case 'awaiting-approval':
    case 'escalated':
      return 'wait-human';
    case 'paused':
      return 'wait-pause';
    case 'held':
      return 'wait-held';
    case 'restarting':
    case 'verifying':
      return 'restart';
    default:
      return 'recheck';
  }
}

/** Remediates the open incident until it closes, or until the run should continue-as-new. */
export async function remediate(e: EntityState, fx: Effects, from: Step): Promise<Ending> {
  const i = new Incident(e, fx, e.s.incident!);
  if (from === 'recheck' && e.s.phase !== 'checking') fx.enter('checking');
  let next: Next = from;
  // 1. Validate: wait out the window; a resolve cancels, a skip drops, an approval cuts it short.
  if (next === 'validate') next = await i.validate();
  for (;;) {
    // 2. Re-check on the host and apply the policy: restart now, or wait.
    if (next === 'recheck') next = await i.recheckAndDecide();
    // Fleet safety: silences, breaker, concurrency, dependencies; held until let go.
    if (next === 'gate') next = await gate(i);
    // 3, 4, 5. Restart on the host, verify; a failure escalates or waits out the cooldown.
    if (next === 'restart') next = await restartAndVerify(i);
    // The waits: for a restart slot (cooldown, budget), for a human, for the end of a pause.
    if (next === 'wait-slot') next = await i.waitForSlot();
    else if (next === 'wait-human') next = await i.waitForHuman();
    else if (next === 'wait-pause') next = await i.waitForPause();
    else if (next === 'wait-held') next = await waitHeld(i);
    if (next === 'closed' || next === 'continue-as-new') return next;
  }
}

class Incident implements IncidentContext {
  readonly host: HostCalls;
  constructor(
    readonly e: EntityState,
    readonly fx: Effects,
    readonly inc: CarriedIncident,
  ) {
    this.host = hostActivities(e.input.host, inc.policy);
  }

  private get s() {
    return this.e.s;
  }

  private get service() {
    return this.e.input.service;
  }

  get where() {
    return `${this.e.input.service} on ${this.e.input.host}`;
  }

  /** The start of a step that does not wait: audit humans' decisions, publish; a pending skip ends the incident. */
  async boundary(): Promise<boolean> {
    await this.fx.boundary();
    return this.s.skipPending;
  }

  skipped(): Promise<Next> {
    return this.close('skipped', 'skipped by a human', { resetFailures: true });
  }

  // ---- 1. validation ----------------------------------------------------------------------------

  async validate(): Promise<Next> {
    const window = this.inc.policy.validationWindowMs;
    const woke = await this.e.waitFor(
      ['resolved', 'approve'],
      () => this.inc.waitUntil,
      () => this.fx.boundary(),
      () => `validation window ${formatDuration(window)}`,
    );
    if (woke === 'continue-as-new') return woke;
    if (woke === 'skip') return this.skipped();
    if (woke === 'resolved') {
      await this.fx.audit({
        event: AUDIT_EVENTS.validationCancelled,
        decision: 'no-restart',
        reason: 'alert resolved during the validation window',
      });
      return this.close('resolved', 'resolved during validation', {});
    }
    this.inc.waitUntil = null;
    this.fx.enter('checking');
    return 'recheck';
  }

  // ---- 2. re-check and decide -------------------------------------------------------------------

  async recheckAndDecide(): Promise<Next> {
    if (await this.boundary()) return this.skipped();
    const p = this.inc.policy;
    // A human who approved has looked: no re-check.
    if (!this.s.approvalPending) {
      let unitActive: boolean;
      let state: string;
      try {
        const st = await this.host.check.executeWithOptions({ summary: `re-check ${this.inc.unit}` }, [this.fx.ref()]);
        unitActive = st.activeState === 'active';
        state = `${st.activeState}/${st.subState}`;
      } catch (err) {
        const f = readFailure(err, false);
        this.inc.attempts++;
        this.s.lastAttemptAt = this.e.now();
        await this.fx.audit({
          event: AUDIT_EVENTS.recheckFailed,
          decision: 'no-restart',
          reason: f.reason,
          detail: f.detail,
        });
        const id = `${this.inc.id}-${this.inc.attempts}`;
        return finishAttempt(this, { ok: false, ...f, approved: false, id, startedAt: this.e.now() });
      }
      const promFiring = unitActive ? await this.fx.alertStillFiring(this.inc.alertnames) : null;
      const firingSignalled = this.e.firing.length > 0;
      if (!stillUnhealthy({ unitActive, alertStillFiring: promFiring, firingSignalled })) {
        if (!patched(PATCH_FAILURES_SURVIVE_RECOVERY)) this.s.consecutiveFailures = 0;
        await this.fx.audit({
          event: AUDIT_EVENTS.recheck,
          decision: 'no-restart',
          reason: `healthy at re-check (unit ${state}${promFiring === false ? ', alert no longer firing' : ''})`,
        });
        return this.close('recovered', 'healthy at re-check', {});
      }
      await this.fx.audit({
        event: AUDIT_EVENTS.recheck,
        decision: 'confirmed',
        reason: unitActive
          ? `unit ${state} but ${promFiring ? 'Prometheus still reports the alert firing' : 'the alert is still firing'}`
          : `unit ${state}`,
      });
    }
    const now = this.e.now();
    if (budgetFreesAt(this.s.restarts, p, now) <= now) this.s.exhaustionEscalated = false;
    const d = decideRestart({
      state: this.s,
      policy: p,
      now,
      approved: this.s.approvalPending,
      paused: this.s.pause != null,
    });
    const decision = (decision: string, reason: string) =>
      this.fx.audit({ event: AUDIT_EVENTS.decision, decision, reason });
    if (this.inc.granted && d.kind !== 'restart') await releaseSlot(this, 'not-used');
    switch (d.kind) {
      case 'restart':
        if (this.e.fleet) {
          if (this.inc.flapping && !d.approved) {
            return hold(this, 'flapping', 'the service is flapping: a human must approve each restart', null);
          }
          return 'gate';
        }
        this.fx.enter('restarting');
        return 'restart';
      case 'dry-run':
        this.s.approvalPending = false;
        await decision('would-restart', 'dry-run mode: not acting');
        return this.close('dry-run', 'dry-run: decided and logged, not acted on', {});
      case 'paused':
        this.fx.enter('paused');
        await decision('hold', 'paused for maintenance');
        return 'wait-pause';
      case 'cooldown':
        this.fx.enter('cooldown');
        this.inc.waitUntil = d.until;
        await decision(
          'wait-cooldown',
          `cooldown: last attempt less than ${formatDuration(p.cooldownMs)} ago; next try at ${iso(d.until)}`,
        );
        return 'wait-slot';
      case 'exhausted': {
        this.fx.enter('exhausted');
        this.inc.waitUntil = d.until;
        const n = restartsInWindow(this.s.restarts, now).length;
        const message = `restart budget used up: ${n} restarts in the last hour (limit ${p.maxRestartsPerHour}); no restart ${d.until ? `until ${iso(d.until)}` : 'at all'} unless approved`;
        await decision('refuse-budget', message);
        if (!this.s.exhaustionEscalated) {
          this.s.exhaustionEscalated = true;
          await this.fx.escalate('SelfHealingExhausted', `${this.where}: ${message}`);
        }
        return 'wait-slot';
      }
      case 'needs-approval':
        this.fx.enter('awaiting-approval');
        await decision('await-approval', 'approval mode: a human must approve the restart');
        if (!this.inc.approvalRequested) {
          this.inc.approvalRequested = true;
          await this.fx.escalate(
            'ApprovalRequired',
            `${this.where} is down (${this.inc.alertnames.join(', ')}); approve the restart with: selfheal approve ${this.service} --host ${this.e.input.host}`,
          );
        }
        return 'wait-human';
    }
  }

  // ---- the waits --------------------------------------------------------------------------------

  /** Cooldown or budget: the slot frees at `waitUntil`; an approval goes through the decision again. */
  async waitForSlot(): Promise<Next> {
    const what = this.s.phase === 'exhausted' ? 'restart budget frees' : 'cooldown';
    const woke = await this.e.waitFor(
      ['resolved', 'approve'],
      () => this.inc.waitUntil,
      () => this.fx.boundary(),
      () => Effects.timer(what, this.inc.waitUntil),
    );
    if (woke === 'continue-as-new') return woke;
    if (woke === 'skip') return this.skipped();
    if (woke === 'resolved') return this.close('resolved', 'alert resolved while waiting', { recovered: true });
    this.inc.waitUntil = null;
    this.fx.enter('checking');
    return 'recheck';
  }

  /** Approval mode or escalated: only a human moves it on (or the alert resolving). */
  async waitForHuman(): Promise<Next> {
    const woke = await this.e.waitFor(
      ['approve', 'resolved'],
      () => null,
      () => this.fx.boundary(),
      () => '',
    );
    if (woke === 'continue-as-new') return woke;
    if (woke === 'skip') return this.skipped();
    if (woke === 'approve') {
      if (this.e.fleet) return 'gate';
      this.fx.enter('restarting');
      return 'restart';
    }
    const while_ = this.inc.approvalRequested ? 'awaiting approval' : 'escalated';
    return this.close('resolved', `alert resolved while ${while_}`, { recovered: true });
  }

  /** Paused for maintenance: held until resume, the pause's end, or an approval. */
  async waitForPause(): Promise<Next> {
    const woke = await this.e.waitFor(
      ['resolved', 'unpaused', 'approve'],
      () => this.s.pause?.until ?? null,
      () => this.fx.boundary(),
      () => Effects.timer('paused', this.s.pause?.until ?? null),
    );
    if (woke === 'continue-as-new') return woke;
    if (woke === 'skip') return this.skipped();
    if (woke === 'resolved') return this.close('resolved', 'alert resolved while paused', {});
    if (woke === 'deadline') return 'wait-pause';
    this.fx.enter('checking');
    return 'recheck';
  }

  // ---- close ------------------------------------------------------------------------------------

  /**
   * Ends the incident. `resetFailures`: a human took over (skip). `recovered`: the service came back
   * on its own; runs from before PATCH_FAILURES_SURVIVE_RECOVERY reset the failure count then.
   */
  async close(
    outcome: string,
    reason: string,
    opts: { resetFailures?: boolean; recovered?: boolean },
  ): Promise<'closed'> {
    if (opts.resetFailures || (opts.recovered && !patched(PATCH_FAILURES_SURVIVE_RECOVERY))) {
      this.s.consecutiveFailures = 0;
    }
    await this.fx.audit({ event: AUDIT_EVENTS.incidentClosed, decision: outcome, reason });
    // The coordinator forgets the incident, its slot and its place in the queue.
    if (this.e.fleet) await notifyFleet(this.e, { kind: 'closed', incidentId: this.inc.id });
    this.s.incident = null;
    this.s.skipPending = false;
    this.s.approvalPending = false;
    // Alerts that arrived during the incident belonged to it.
    this.s.pendingAlert = null;
    this.fx.enter(this.s.pause ? 'paused' : 'idle');
    return 'closed';
  }
}
