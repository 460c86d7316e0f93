// The fleet coordinator's contract: its fixed id and own task queue, the signals between it and the
// entity workflows, the human commands (trip, reset) and the `breaker` query. The API, the CLI and
// the activities import this file, never the workflow body.
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { EscalationPayload } from './definitions';
import type { ReleaseResult } from '../policy/admission';
import type { AdmissionRequest, Breaker, FleetSettings, FleetState, HoldReason, ScopeCount } from '../policy/fleet';

export const FLEET_WORKFLOW_TYPE = 'selfhealFleet';
/** One coordinator per namespace. */
export const FLEET_WORKFLOW_ID = 'selfheal-fleet';
/**
 * Its own task queue (polled by a second worker in the control process), so the coordinator's tasks
 * never wait behind thousands of entity workflow tasks in an alert storm.
 */
export const FLEET_TASK_QUEUE = 'selfheal-fleet';

/** What an entity workflow tells the coordinator (sent by the notifyFleet activity, signal-with-start). */
export type FleetReport =
  | { kind: 'opened'; host: string; service: string; incidentId: string }
  | { kind: 'closed'; host: string; service: string; incidentId: string }
  | ({ kind: 'request' } & AdmissionRequest)
  | { kind: 'release'; host: string; service: string; incidentId: string; result: ReleaseResult };

/** The coordinator's answer to a request: go (a restart slot is held for the incident) or hold. */
export interface FleetAnswer {
  incidentId: string;
  ask: number;
  decision: 'grant' | 'hold';
  reason?: HoldReason;
  detail?: string;
}

export interface BreakerCommand {
  action: 'trip' | 'reset';
  /** `fleet` or `host:<name>`. */
  scope: string;
  by?: string | null;
  reason?: string | null;
  /** Echoed in the view's `lastCommand`, so a caller can see its command applied. */
  id?: string;
}

export const fleetReportSignal = defineSignal<[FleetReport]>('fleetReport');
export const fleetAnswerSignal = defineSignal<[FleetAnswer]>('fleetAnswer');
export const breakerCommandSignal = defineSignal<[BreakerCommand]>('breakerCommand');

export interface BreakerScopeView extends Breaker {
  scope: string;
  count: ScopeCount;
  sinceIso: string;
}

export interface BreakerView {
  scopes: BreakerScopeView[];
  restartsInFlight: number;
  restartsInFlightByHost: Record<string, number>;
  held: { host: string; service: string; reason: HoldReason; detail: string; since: string }[];
  openIncidents: number;
  settings: FleetSettings | null;
  lastCommand: string | null;
  run: number;
  historyLength: number;
}

export const breakerQuery = defineQuery<BreakerView>('breaker');

export interface FleetWorkflowInput {
  /** Continue-as-new once the run's history reaches this many events (default 5,000). */
  maxHistoryEvents?: number;
  carried?: {
    state: FleetState;
    settings: FleetSettings | null;
    run: number;
    lastCommand: string | null;
    /** MassFailure escalations whose delivery had not finished. */
    undelivered?: EscalationPayload[];
  };
}
