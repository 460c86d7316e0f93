// The `state` query's answer, one service as its workflow sees it. GET /services/:host/:service
// serves it (response schema) and src/workflows/definitions.ts takes its types from here, by
// `import type` only, so workflow code never loads TypeBox.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { HOLD_REASONS } from '../../policy/fleet';
import { MODES, PHASES, STATUSES, type Policy } from '../../policy/policy';
import { ESCALATION_EVENTS } from '../../workflows/definitions';

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** One of a list of strings (the static type is the list's element type). */
export const OneOf = <T extends string>(values: readonly T[]) => Type.Union(values.map((v) => Type.Literal(v)));

const Iso = Type.String({ description: 'ISO 8601 time' });

/** One alert by identity: Alertmanager's fingerprint (else a fingerprint of its labels), and its name. */
export const AlertRefSchema = Type.Object({ id: Type.String(), name: Type.String() });

export const AttemptRecordSchema = Type.Object({
  id: Type.String(),
  at: Iso,
  result: OneOf(['success', 'failure'] as const),
  /** Why it failed (`host-unreachable`, `not-active`, `restart-command-failed`, ...) or `verified`. */
  reason: Type.String(),
  /** Whether the restart command actually ran (only those count against the hourly budget). */
  restarted: Type.Boolean(),
  approved: Type.Boolean(),
  durationMs: Type.Number(),
  detail: Type.Optional(Type.String()),
});

export const IncidentViewSchema = Type.Object({
  id: Type.String(),
  openedAt: Iso,
  alertnames: Type.Array(Type.String()),
  summary: Nullable(Type.String()),
  attempts: Type.Integer(),
  duplicateAlerts: Type.Integer(),
  /** Absolute time the current wait (validation window, cooldown, budget) ends. */
  waitUntil: Nullable(Iso),
});

export const EscalationViewSchema = Type.Object({
  event: OneOf(ESCALATION_EVENTS),
  at: Iso,
  message: Type.String(),
});

/** The effective policy of the open incident (src/policy/policy.ts `Policy`), durations in milliseconds. */
export const PolicySchema = Type.Object({
  validationWindowMs: Type.Number(),
  cooldownMs: Type.Number(),
  maxRestartsPerHour: Type.Integer(),
  maxConsecutiveFailures: Type.Integer(),
  verifyTimeoutMs: Type.Number(),
  verifyStableMs: Type.Number(),
  hostTimeoutMs: Type.Number(),
  mode: OneOf(MODES),
  verifyAlertClears: Type.Boolean(),
  flapping: Type.Optional(Type.Object({ incidents: Type.Integer(), windowMs: Type.Number() })),
});
// `Policy` is the pure core's own type: the schema must say exactly what it says.
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const policySchemaMatches: Same<Static<typeof PolicySchema>, Policy> = true;
void policySchemaMatches;

export const ServiceStateSchema = Type.Object({
  workflowId: Type.String(),
  host: Type.String(),
  service: Type.String(),
  phase: OneOf(PHASES),
  status: OneOf(STATUSES),
  paused: Type.Boolean(),
  pausedUntil: Nullable(Iso),
  pauseReason: Nullable(Type.String()),
  /** Names of the alerts that fire (one entry per name). */
  firingAlerts: Type.Array(Type.String()),
  /** The firing alerts by identity. */
  firing: Type.Array(AlertRefSchema),
  incident: Nullable(IncidentViewSchema),
  /** Why the incident waits in phase `held` (fleet safety); absent from workflows before it. */
  held: Type.Optional(Nullable(Type.Object({ reason: OneOf(HOLD_REASONS), detail: Type.String(), since: Iso }))),
  consecutiveFailures: Type.Integer(),
  restartsLastHour: Type.Integer(),
  restartTimes: Type.Array(Iso),
  cooldownUntil: Nullable(Iso),
  budgetFreesAt: Nullable(Iso),
  /** What approve / skip would act on right now. */
  canApprove: Type.Boolean(),
  canSkip: Type.Boolean(),
  lastEscalation: Nullable(EscalationViewSchema),
  recentAttempts: Type.Array(AttemptRecordSchema),
  totals: Type.Object({
    incidents: Type.Integer(),
    restarts: Type.Integer(),
    failures: Type.Integer(),
    escalations: Type.Integer(),
  }),
  policy: Nullable(PolicySchema),
  /** Continue-as-new generation of this entity. */
  run: Type.Integer(),
  historyLength: Type.Integer(),
});
