// Alertmanager's webhook payload, version 4 (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
// Strict about what we read; unknown extra fields are tolerated so a newer Alertmanager still works.
import { Type, type Static } from '@sinclair/typebox';

const Labels = Type.Record(Type.String(), Type.String({ maxLength: 4096 }));

export const AlertSchema = Type.Object(
  {
    status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
    labels: Labels,
    annotations: Type.Optional(Labels),
    startsAt: Type.Optional(Type.String({ maxLength: 64 })),
    endsAt: Type.Optional(Type.String({ maxLength: 64 })),
    generatorURL: Type.Optional(Type.String({ maxLength: 4096 })),
    fingerprint: Type.Optional(Type.String({ maxLength: 128 })),
  },
  { additionalProperties: true },
);

export const WebhookSchema = Type.Object(
  {
    version: Type.Literal('4'),
    groupKey: Type.Optional(Type.String()),
    truncatedAlerts: Type.Optional(Type.Integer({ minimum: 0 })),
    status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
    receiver: Type.Optional(Type.String()),
    groupLabels: Type.Optional(Labels),
    commonLabels: Type.Optional(Labels),
    commonAnnotations: Type.Optional(Labels),
    externalURL: Type.Optional(Type.String()),
    alerts: Type.Array(AlertSchema, { maxItems: 10_000 }),
  },
  { additionalProperties: true },
);

export type WebhookBody = Static<typeof WebhookSchema>;
export type WebhookAlert = Static<typeof AlertSchema>;

const Accepted = Type.Object({
  host: Type.String(),
  service: Type.String(),
  status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
  alertnames: Type.Array(Type.String()),
  workflowId: Type.String(),
  /** For resolved alerts of a service that has no workflow: nothing to cancel. */
  note: Type.Optional(Type.String()),
});

/** An alert acknowledged but not acted on, and why. */
export const NotActedOnSchema = Type.Object({
  alertname: Type.Union([Type.String(), Type.Null()]),
  host: Type.Union([Type.String(), Type.Null()]),
  service: Type.Union([Type.String(), Type.Null()]),
  status: Type.String(),
  reason: Type.String(),
});

export const WebhookResponseSchema = Type.Object({
  status: Type.Literal('ok'),
  received: Type.Integer(),
  accepted: Type.Array(Accepted),
  ignored: Type.Array(NotActedOnSchema),
  rejected: Type.Array(NotActedOnSchema),
});

export type WebhookResponse = Static<typeof WebhookResponseSchema>;
