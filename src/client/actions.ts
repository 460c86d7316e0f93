// What humans (API routes and the CLI) can ask of a service's workflow: its state, approve, skip,
// pause, resume. One implementation, so both doors answer the same way.
import type { Static } from '@sinclair/typebox';
import { QueryRejectedError, WorkflowClient, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { ActionResultSchema, HumanActionSchema, ServiceSummarySchema } from '../api/schemas/common';
import type { Config, ServiceConfig } from '../config/config';
import { formatDuration } from '../policy/duration';
import { PHASES, STATUS_VALUE, type Phase, type Status } from '../policy/policy';
import {
  approveSignal,
  pauseSignal,
  resumeSignal,
  SA_FAILURES,
  SA_HOST,
  SA_PHASE,
  SA_SERVICE,
  SA_STATUS,
  skipSignal,
  stateQuery,
  WORKFLOW_TYPE,
  workflowIdFor,
  type HumanActionPayload,
  type ServiceStateView,
} from '../workflows/definitions';
import { ActionError, callTemporal, isUnavailable } from './call';
import { Pool } from './pool';
import { signalWithStartService } from './signals';

/**
 * Up to this many services, lists read every workflow's own state (exact, includes restarts in the
 * last hour); beyond it, one visibility list serves any fleet size (a few seconds behind).
 */
export const QUERY_ALL_LIMIT = 100;

/** Where a list of services was read: each workflow's `state` query, or the visibility index. */
export type ReadSource = 'workflows' | 'index';

/** The longest pause with an end (`for`); longer ones are refused: pause without an end instead. */
export const MAX_PAUSE_MS = 365 * 86_400_000;

/** Why a pause duration cannot be used, or null. `flag` is how the caller names the option. */
export function pauseDurationProblem(forMs: number, flag: string): string | null {
  if (Number.isNaN(forMs) || forMs <= 0) return 'the pause duration must be positive';
  if (forMs > MAX_PAUSE_MS) {
    return `longer than the longest pause (${formatDuration(MAX_PAUSE_MS)}); leave out ${flag} to pause until resumed`;
  }
  return null;
}

type Summary = Static<typeof ServiceSummarySchema>;
/** A service with its state, as GET /services and `selfheal status` list it. */
export type ServiceSummary = Summary & { phase: Phase; status: Status; readError?: undefined };
/** A service whose workflow state could not be read: the others are still listed. */
export type UnreadableSummary = Summary & { phase: 'unknown'; status: 'UNKNOWN'; readError: string };

/** One service's read: its state (null: no running workflow), or why it could not be read. */
export interface ServiceRead {
  svc: ServiceConfig;
  state: ServiceStateView | null;
  error?: Error;
}

export type HumanAction = Static<typeof HumanActionSchema>;
export type ActionResult = Static<typeof ActionResultSchema>;

/** Finds a configured service by name (and host, when the name is on several hosts). */
export function resolveService(config: Config, service: string, host?: string): ServiceConfig {
  const matches = config.services.filter((s) => s.name === service && (!host || s.host === host));
  if (matches.length === 0) {
    const known = config.services.filter((s) => s.name === service).map((s) => s.host);
    throw new ActionError(
      'not-found',
      host && known.length
        ? `${service} is not configured on host ${host} (it is on: ${known.join(', ')})`
        : `${service} is not a configured service (${config.source})`,
    );
  }
  if (matches.length > 1) {
    throw new ActionError(
      'ambiguous',
      `${service} is configured on several hosts (${matches.map((m) => m.host).join(', ')}); say which with --host`,
    );
  }
  return matches[0];
}

export class ServiceActions {
  /**
   * Queries only open runs: a terminated or failed run would otherwise answer from its last recorded
   * state (a HEALING that nothing works on any more) until the namespace's retention drops it.
   */
  private readonly reads: WorkflowClient;

  constructor(
    private readonly client: Client,
    private readonly config: Config,
    private readonly timeoutMs = 5_000,
  ) {
    this.reads = new WorkflowClient({ ...client.workflow.options, queryRejectCondition: 'NOT_OPEN' });
  }

  private call<T>(fn: () => Promise<T>, timeoutMs = this.timeoutMs): Promise<T> {
    return callTemporal(this.client, timeoutMs, fn);
  }

  /** Finds a configured service by name (and host, when the name is on several hosts). */
  resolve(service: string, host?: string): ServiceConfig {
    return resolveService(this.config, service, host);
  }

  /** The workflow's own state, or null when it has no running workflow (never alerted, or terminated). */
  async state(host: string, service: string, timeoutMs?: number): Promise<ServiceStateView | null> {
    try {
      return await this.call(() => this.reads.getHandle(workflowIdFor(host, service)).query(stateQuery), timeoutMs);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || err instanceof QueryRejectedError) return null;
      if (err instanceof ActionError) throw err;
      // A completed/terminated run cannot answer: treat as no workflow.
      if (/not found|workflow.*(completed|terminated)/i.test((err as Error).message)) return null;
      const detail = ((err as Error).message ?? String(err)).split('\n')[0];
      throw new ActionError('unreadable', `${service} on ${host} could not answer its state query: ${detail}`, {
        cause: err,
      });
    }
  }

  summaryOf(svc: ServiceConfig, state: ServiceStateView | null): ServiceSummary {
    return {
      host: svc.host,
      service: svc.name,
      workflowId: workflowIdFor(svc.host, svc.name),
      exists: state != null,
      phase: state?.phase ?? 'idle',
      status: state?.status ?? 'OK',
      consecutiveFailures: state?.consecutiveFailures ?? 0,
      restartsLastHour: state?.restartsLastHour ?? 0,
      paused: state?.paused ?? false,
      incident: state?.incident?.id ?? null,
      heldReason: state?.held?.reason ?? null,
    };
  }

  /**
   * The full state of every configured service, in config order (16 reads at a time). A service whose
   * read fails carries the error; it never hides the others. Throws `unavailable` only when no read
   * succeeded because Temporal could not be reached: that is the answer (503 / exit 4), not a list of unknowns.
   */
  async states(opts: { timeoutMs?: number } = {}): Promise<ServiceRead[]> {
    const reads = await new Pool(16).map(this.config.services, async (svc): Promise<ServiceRead> => {
      try {
        return { svc, state: await this.state(svc.host, svc.name, opts.timeoutMs) };
      } catch (err) {
        return { svc, state: null, error: err instanceof Error ? err : new Error(String(err)) };
      }
    });
    if (reads.length && reads.every((r) => isUnavailable(r.error))) throw reads[0].error;
    return reads;
  }

  /**
   * Every configured service with its state, read from the workflows themselves; a service that could
   * not be read is listed as UNKNOWN with the reason.
   */
  async list(): Promise<(ServiceSummary | UnreadableSummary)[]> {
    const reads = await this.states();
    return reads.map(({ svc, state, error }) => (error ? this.unreadable(svc, error) : this.summaryOf(svc, state)));
  }

  unreadable(svc: ServiceConfig, error: Error): UnreadableSummary {
    return {
      host: svc.host,
      service: svc.name,
      workflowId: workflowIdFor(svc.host, svc.name),
      exists: true,
      phase: 'unknown',
      status: 'UNKNOWN',
      consecutiveFailures: 0,
      readError: readErrorText(error),
    };
  }

  /** Whether a list of every service reads the index: search attributes on and past QUERY_ALL_LIMIT. */
  indexed(): boolean {
    return this.config.temporal.searchAttributes && this.config.services.length > QUERY_ALL_LIMIT;
  }

  /**
   * Every configured service, read where it is fast enough for the fleet's size (see indexed());
   * `exact` queries every workflow whatever the size.
   */
  async overview(opts: { exact?: boolean } = {}): Promise<{
    source: ReadSource;
    services: (ServiceSummary | UnreadableSummary)[];
  }> {
    if (!opts.exact && this.indexed()) return { source: 'index', services: await this.listFromVisibility() };
    return { source: 'workflows', services: await this.list() };
  }

  /**
   * Status, phase and failure count of every configured service from the visibility index. Only the
   * workflows with something to show are listed (not idle, not OK, or with failures): a fleet at rest
   * costs one short call however many services it has. The others are idle and OK; from here they
   * read as `exists: false` (at rest or never alerted: the index does not say which).
   */
  async listFromVisibility(): Promise<ServiceSummary[]> {
    const found = new Map<string, ServiceSummary>();
    await this.call(async () => {
      const query =
        `WorkflowType = '${WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND ` +
        `(${SA_PHASE.name} != 'idle' OR ${SA_STATUS.name} != 'OK' OR ${SA_FAILURES.name} > 0)`;
      for await (const wf of this.client.workflow.list({ query, pageSize: 1000 })) {
        const sa = wf.typedSearchAttributes;
        const host = sa.get(SA_HOST);
        const service = sa.get(SA_SERVICE);
        if (!host || !service) continue;
        const status = sa.get(SA_STATUS) as Status | undefined;
        const phase = sa.get(SA_PHASE) as Phase | undefined;
        found.set(`${host}/${service}`, {
          host,
          service,
          workflowId: wf.workflowId,
          exists: true,
          phase: phase && PHASES.includes(phase) ? phase : 'idle',
          status: status && status in STATUS_VALUE ? status : 'OK',
          consecutiveFailures: sa.get(SA_FAILURES) ?? 0,
        });
      }
    });
    return this.config.services.map((svc) => found.get(`${svc.host}/${svc.name}`) ?? this.summaryOf(svc, null));
  }

  async approve(svc: ServiceConfig, p: HumanActionPayload): Promise<ActionResult> {
    const st = await this.state(svc.host, svc.name);
    if (!st?.canApprove) {
      throw new ActionError('conflict', `nothing to approve for ${svc.name} on ${svc.host}: ${describe(st)}`);
    }
    // Names the incident: if it closes before the signal lands, the approval does not carry over.
    const signal = { ...p, incidentId: st.incident?.id };
    await this.call(() =>
      this.client.workflow.getHandle(workflowIdFor(svc.host, svc.name)).signal(approveSignal, signal),
    );
    return this.result('approve', svc, `approved one restart of ${svc.name} on ${svc.host}`);
  }

  async skip(svc: ServiceConfig, p: HumanActionPayload): Promise<ActionResult> {
    const st = await this.state(svc.host, svc.name);
    if (!st?.canSkip) {
      throw new ActionError('conflict', `nothing to skip for ${svc.name} on ${svc.host}: ${describe(st)}`);
    }
    const signal = { ...p, incidentId: st.incident?.id };
    await this.call(() => this.client.workflow.getHandle(workflowIdFor(svc.host, svc.name)).signal(skipSignal, signal));
    return this.result('skip', svc, `dropped the current incident of ${svc.name} on ${svc.host}; watching again`);
  }

  async pause(svc: ServiceConfig, p: HumanActionPayload & { forMs?: number | null }): Promise<ActionResult> {
    const problem = p.forMs != null ? pauseDurationProblem(p.forMs, '"for"') : null;
    if (problem) throw new ActionError('invalid', problem);
    const until = p.forMs ? new Date(Date.now() + p.forMs).toISOString() : null;
    await this.call(() =>
      signalWithStartService(this.client, this.config, svc.host, svc.name, pauseSignal, {
        by: p.by,
        reason: p.reason,
        until,
      }),
    );
    return this.result(
      'pause',
      svc,
      `paused ${svc.name} on ${svc.host} ${p.forMs ? `for ${formatDuration(p.forMs)} (until ${until})` : 'until resumed'}`,
    );
  }

  async resume(svc: ServiceConfig, p: HumanActionPayload): Promise<ActionResult> {
    const st = await this.state(svc.host, svc.name);
    if (!st?.paused) throw new ActionError('conflict', `${svc.name} on ${svc.host} is not paused`);
    await this.call(() => this.client.workflow.getHandle(workflowIdFor(svc.host, svc.name)).signal(resumeSignal, p));
    return this.result('resume', svc, `resumed ${svc.name} on ${svc.host}`);
  }

  private result(action: HumanAction, svc: ServiceConfig, message: string): ActionResult {
    return { action, host: svc.host, service: svc.name, workflowId: workflowIdFor(svc.host, svc.name), message };
  }
}

/** A read error in a line: what the workflow or Temporal said, without our own prefix. */
function readErrorText(error: Error): string {
  const inner = error instanceof ActionError && error.code === 'unreadable' && error.cause instanceof Error;
  return (inner ? (error.cause as Error) : error).message.split('\n')[0].slice(0, 300);
}

function describe(st: ServiceStateView | null): string {
  if (!st) return 'no incident (it has never alerted)';
  if (!st.incident) return `no incident in progress (phase ${st.phase})`;
  return `phase ${st.phase}`;
}
