// Every signal, query and search attribute of the service workflow, with payload types.
// The API and the CLI import this file, never the workflow body.
import type { Static } from '@sinclair/typebox';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type {
  AlertRefSchema,
  AttemptRecordSchema,
  EscalationViewSchema,
  IncidentViewSchema,
  ServiceStateSchema,
} from '../api/schemas/state';
import type { HoldReason } from '../policy/fleet';
import type { Phase, Policy } from '../policy/policy';

export const WORKFLOW_TYPE = 'selfhealService';
export const CONTROL_TASK_QUEUE = 'selfheal-control';

/** Restart and verification activities run on the service's own host, served by a worker there. */
export function hostTaskQueue(host: string): string {
  return `selfheal-host-${host}`;
}

/** One long-lived workflow per (host, service). */
export function workflowIdFor(host: string, service: string): string {
  return `selfheal/${host}/${service}`;
}

// Bounds on what a workflow remembers, so carried state and history stay small whatever arrives.
/** Firing alerts remembered per service (the oldest are forgotten first). */
export const MAX_FIRING_ALERTS = 64;
/** Alert names remembered per incident. */
export const MAX_INCIDENT_ALERTNAMES = 20;
/** Undelivered escalations carried through continue-as-new (the oldest are dropped first). */
export const MAX_UNDELIVERED_ESCALATIONS = 20;
export const MAX_ALERT_NAME_LENGTH = 200;
export const MAX_ALERT_ID_LENGTH = 128;

/** One alert by identity: Alertmanager's fingerprint (else a fingerprint of its labels), and its name. */
export type AlertRef = Static<typeof AlertRefSchema>;

// Signal payloads stay a few fields: never whole alert bodies.
export interface AlertFiringPayload {
  /** Alert names that fire for this service (deduplicated by the API). */
  alertnames?: string[];
  /**
   * The firing alerts by identity. Without it (a signal typed in the Temporal UI or CLI), each
   * name in `alertnames` is one alert.
   */
  alerts?: AlertRef[];
  /** One-line summary from the alert's annotations, truncated. */
  summary?: string;
}

export interface AlertResolvedPayload {
  /** Which alerts resolved, by name (used when `alerts` is absent); both absent means all of them. */
  alertnames?: string[];
  /** Which alerts resolved, by identity: only these stop firing. */
  alerts?: AlertRef[];
}

export interface HumanActionPayload {
  by?: string;
  reason?: string;
  /**
   * The incident this action is meant for (approve, skip). When it is not the open incident (it
   * closed meanwhile) the action is ignored, so a late approval never applies to the next incident.
   */
  incidentId?: string;
}

export interface PausePayload extends HumanActionPayload {
  /** ISO time the pause ends by itself; absent means until `resume`. */
  until?: string | null;
}

export const alertFiringSignal = defineSignal<[AlertFiringPayload?]>('alertFiring');
export const alertResolvedSignal = defineSignal<[AlertResolvedPayload?]>('alertResolved');
export const approveSignal = defineSignal<[HumanActionPayload?]>('approve');
export const skipSignal = defineSignal<[HumanActionPayload?]>('skip');
export const pauseSignal = defineSignal<[PausePayload?]>('pause');
export const resumeSignal = defineSignal<[HumanActionPayload?]>('resume');

/** Every escalation the workflow sends (the `event` of the webhook body, the `reason` label of the metric). */
export const ESCALATION_EVENTS = [
  'SelfHealingExhausted',
  'ConsecutiveFailures',
  'HostUnreachable',
  'HostStateUnwritable',
  'ApprovalRequired',
  /** The breaker of a scope tripped: one for the storm, listing the affected services. */
  'MassFailure',
  /** A service had many incidents in a short window: its restarts need approval until it is quiet. */
  'ServiceFlapping',
] as const;
export type EscalationEvent = (typeof ESCALATION_EVENTS)[number];

/** Failure types the host activities raise (non-retryable `ApplicationFailure`s) and the workflow reads. */
export const HOST_ERRORS = {
  invalidUnit: 'InvalidUnitName',
  notAllowed: 'ServiceNotAllowed',
  restartFailed: 'RestartFailed',
  /** The restart marker could not be written: nothing was restarted (a restart without it could repeat). */
  hostStateUnwritable: 'HostStateUnwritable',
} as const;
export type HostErrorType = (typeof HOST_ERRORS)[keyof typeof HOST_ERRORS];

/** Audit log events (one JSON line each); the metrics count some of them. */
export const AUDIT_EVENTS = {
  incidentOpened: 'incident-opened',
  validationCancelled: 'validation-cancelled',
  recheck: 'recheck',
  recheckFailed: 'recheck-failed',
  decision: 'decision',
  restart: 'restart',
  attemptFinished: 'attempt-finished',
  escalated: 'escalated',
  incidentClosed: 'incident-closed',
  notConfigured: 'not-configured',
  approved: 'approved',
  skipped: 'skipped',
  paused: 'paused',
  resumed: 'resumed',
  ignoredSignal: 'ignored-signal',
  alertsNotActedOn: 'alerts-not-acted-on',
  /** Fleet safety: a breaker's transition (the coordinator's lines, host `*` for the fleet scope). */
  breaker: 'breaker',
  /** An incident waits in phase `held` (reason in `decision`), and is let go. */
  held: 'held',
  released: 'released',
} as const;
export type AuditEvent = (typeof AUDIT_EVENTS)[keyof typeof AUDIT_EVENTS];

/** The JSON body POSTed to every escalation webhook. */
export interface EscalationPayload {
  /** Stable per escalation: receivers can dedupe on it (delivery is at-least-once). */
  id: string;
  event: EscalationEvent;
  host: string;
  service: string;
  workflowId: string;
  incidentId: string | null;
  consecutiveFailures: number;
  restartsLastHour: number;
  message: string;
  time: string;
  lastAttempt?: { result: string; reason: string; at: string } | null;
  /** Link to the workflow in the Temporal UI, when its address is known. */
  temporalUi?: string;
  /** MassFailure: the breaker's scope (`fleet`, `host:<name>`) and the services with an open incident. */
  scope?: string;
  services?: string[];
}

// The `state` query's answer and its parts: types of the API's response schema (src/api/schemas/state.ts).
export type AttemptRecord = Static<typeof AttemptRecordSchema>;
export type AttemptResult = AttemptRecord['result'];
export type IncidentView = Static<typeof IncidentViewSchema>;
export type EscalationView = Static<typeof EscalationViewSchema>;
/** What the `state` query answers. Plain JSON. */
export type ServiceStateView = Static<typeof ServiceStateSchema>;

export const stateQuery = defineQuery<ServiceStateView>('state');

// Custom search attributes, so the Temporal UI (and `selfheal status`) can filter by them.
export const SA_SERVICE = defineSearchAttributeKey('SelfhealService', SearchAttributeType.KEYWORD);
export const SA_HOST = defineSearchAttributeKey('SelfhealHost', SearchAttributeType.KEYWORD);
export const SA_PHASE = defineSearchAttributeKey('SelfhealPhase', SearchAttributeType.KEYWORD);
export const SA_STATUS = defineSearchAttributeKey('SelfhealStatus', SearchAttributeType.KEYWORD);
export const SA_FAILURES = defineSearchAttributeKey('SelfhealConsecutiveFailures', SearchAttributeType.INT);

/** Name → type, as `temporal operator search-attribute create` and the operator API want them. */
export const SEARCH_ATTRIBUTES: Record<string, 'Keyword' | 'Int'> = {
  SelfhealService: 'Keyword',
  SelfhealHost: 'Keyword',
  SelfhealPhase: 'Keyword',
  SelfhealStatus: 'Keyword',
  SelfhealConsecutiveFailures: 'Int',
};

/** Workflow input. `carried` is set only by continue-as-new. */
export interface ServiceWorkflowInput {
  host: string;
  service: string;
  /** Upsert the custom search attributes (they must be registered in the namespace). */
  searchAttributes?: boolean;
  /** Continue-as-new once the run's history reaches this many events (default 2,000). */
  maxHistoryEvents?: number;
  /** Continue-as-new once this run has received this many signals (default 1,000). */
  maxSignalsPerRun?: number;
  carried?: CarriedState;
  /**
   * false: of its reports to the fleet coordinator the workflow sends only its restart asks (no
   * opened / release / closed). Only `selfheal simulate` sets it, in its run without the coordinator
   * (asks granted at once; the run is kept only if its records show the coordinator could never have
   * acted); a coordinator that ran would count such incidents open forever. Carried through
   * continue-as-new with the input.
   */
  fleetReports?: boolean;
}

/** Everything a new run needs, as plain JSON: numbers are epoch milliseconds. */
export interface CarriedState {
  run: number;
  phase: Phase;
  restarts: number[];
  lastAttemptAt: number | null;
  consecutiveFailures: number;
  /** Time of the last failed attempt: the failure count is forgotten after a quiet hour. */
  lastFailureAt?: number | null;
  pause: { until: number | null; by: string | null; reason: string | null } | null;
  /** Firing alerts, oldest first (runs before identities carried plain names: they are migrated). */
  firing: (AlertRef | string)[];
  pendingAlert: { alertnames: string[]; summary: string | null } | null;
  approvalPending: boolean;
  skipPending: boolean;
  incident: CarriedIncident | null;
  exhaustionEscalated: boolean;
  lastEscalation: { event: EscalationEvent; at: number; message: string } | null;
  attempts: AttemptRecord[];
  totals: { incidents: number; restarts: number; failures: number; escalations: number };
  incidentSeq: number;
  /** Escalations whose delivery had not finished when the previous run continued-as-new. */
  undelivered: EscalationPayload[];
  /** Fleet safety: when recent incidents opened (flap detection, pruned to the window). */
  incidentTimes?: number[];
  /** When the service started flapping (ServiceFlapping went out); null when it is not. */
  flappingSince?: number | null;
}

export interface CarriedIncident {
  id: string;
  openedAt: number;
  alertnames: string[];
  summary: string | null;
  attempts: number;
  duplicateAlerts: number;
  waitUntil: number | null;
  policy: Policy;
  unit: string;
  manager: string;
  hostUnreachableEscalated: boolean;
  /** Optional: absent in state carried by runs from before it existed. */
  hostStateEscalated?: boolean;
  approvalRequested: boolean;
  // Fleet safety (optional: absent in state carried by runs from before it).
  /** Why the incident waits in phase `held`, since when. */
  held?: { reason: HoldReason; detail: string; since: number } | null;
  /** The coordinator granted a restart slot for this incident (given back after the attempt). */
  granted?: boolean;
  /** Asks sent to the coordinator for this incident. */
  asks?: number;
  /** Keys (`host/service`) of the services this one depends on. */
  dependsOn?: string[];
  /** The service was flapping when this incident opened: its restarts need approval. */
  flapping?: boolean;
  /** How long to wait for the coordinator's answer. */
  answerTimeoutMs?: number;
}
