import { HOLD_REASONS } from '../../policy/fleet';
import { Type } from '@sinclair/typebox';
import { PHASES, STATUSES } from '../../policy/policy';
import { OneOf } from './state';

export const ErrorSchema = Type.Object({
  error: Type.String(),
  message: Type.String(),
  /** True when retrying later may succeed (Temporal unreachable). */
  retryable: Type.Optional(Type.Boolean()),
});

export const ServiceParams = Type.Object({
  host: Type.String({ minLength: 1, maxLength: 253 }),
  service: Type.String({ minLength: 1, maxLength: 255 }),
});

export const ActionBody = Type.Union([
  Type.Object(
    {
      reason: Type.Optional(Type.String({ maxLength: 500 })),
      by: Type.Optional(Type.String({ maxLength: 100 })),
      /** pause only: how long, e.g. 30m or 2h; absent means until resumed. */
      for: Type.Optional(Type.String({ maxLength: 32 })),
    },
    { additionalProperties: false },
  ),
  Type.Null(),
]);

/**
 * A service as GET /services lists it: from its workflow's state, from the visibility index, or
 * (status UNKNOWN, phase unknown, with readError) when its workflow could not answer.
 */
export const ServiceSummarySchema = Type.Object({
  host: Type.String(),
  service: Type.String(),
  workflowId: Type.String(),
  /**
   * False when no workflow exists yet for this service (it never alerted); read from the visibility
   * index (`source: index`), also false for a service at rest (idle, OK, no failures).
   */
  exists: Type.Boolean(),
  phase: OneOf([...PHASES, 'unknown' as const]),
  status: OneOf([...STATUSES, 'UNKNOWN' as const]),
  consecutiveFailures: Type.Integer(),
  /** Present when read from the workflow's own state (not from the visibility index). */
  restartsLastHour: Type.Optional(Type.Integer()),
  paused: Type.Optional(Type.Boolean()),
  incident: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  /** Why the incident waits in phase `held` (fleet safety). */
  heldReason: Type.Optional(Type.Union([OneOf(HOLD_REASONS), Type.Null()])),
  /** Why the workflow could not answer, as Temporal said it (the API shows it to token holders only). */
  readError: Type.Optional(Type.String()),
});

export const HumanActionSchema = OneOf(['approve', 'skip', 'pause', 'resume'] as const);

export const ActionResultSchema = Type.Object({
  action: HumanActionSchema,
  host: Type.String(),
  service: Type.String(),
  workflowId: Type.String(),
  message: Type.String(),
});
