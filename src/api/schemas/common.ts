import { Type } from '@sinclair/typebox';

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

export const ServiceSummarySchema = Type.Object({
  host: Type.String(),
  service: Type.String(),
  workflowId: Type.String(),
  exists: Type.Boolean(),
  phase: Type.String(),
  status: Type.String(),
  consecutiveFailures: Type.Integer(),
  restartsLastHour: Type.Optional(Type.Integer()),
  paused: Type.Optional(Type.Boolean()),
  incident: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  /** Present (with status UNKNOWN) when the service's workflow could not answer its state query. */
  readError: Type.Optional(Type.String()),
});

export const ActionResultSchema = Type.Object({
  action: Type.String(),
  host: Type.String(),
  service: Type.String(),
  workflowId: Type.String(),
  message: Type.String(),
});
