import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { deliverPlan, planAlerts, type NotActedOn } from '../../client/alert-intake';
import { isUnavailable } from '../../client/call';
import { Pool } from '../../client/pool';
import { AUDIT_EVENTS } from '../../workflows/definitions';
import type { AppDeps } from '../app';
import { DeliveryRecorder } from '../record';
import { ResendLedger } from '../resends';
import { requireToken } from '../auth';
import { ErrorSchema } from '../schemas/common';
import { WebhookResponseSchema, WebhookSchema } from '../schemas/webhook';

/** What the response and the audit log show of an alert not acted on (the metric label stays internal). */
const shown = ({ kind: _kind, ...rest }: NotActedOn & { kind: string }): NotActedOn => rest;

export const webhookRoutes: FastifyPluginAsyncTypebox<AppDeps> = async (app, deps) => {
  const { config, metrics } = deps;
  // One limit for the whole process: concurrent deliveries queue rather than overload Temporal.
  const pool = new Pool(32);
  const resends = new ResendLedger();
  const recorder = config.api.recordDeliveries
    ? new DeliveryRecorder(config.api.recordDeliveries, (m) => app.log.error(m))
    : null;

  app.addHook('onResponse', async (_request, reply) => {
    metrics.webhookRequests.inc({ code: String(reply.statusCode) });
  });

  app.post(
    '/selfheal/trigger',
    {
      // Checked before the body is read: a wrong token never costs a parse.
      onRequest: requireToken(() => [config.api.token], config.api.insecure, 'Alertmanager webhook token'),
      schema: {
        body: WebhookSchema,
        response: { 200: WebhookResponseSchema, 503: ErrorSchema },
      },
    },
    async (request, reply) => {
      const body = request.body;
      for (const a of body.alerts) metrics.alertsReceived.inc({ status: a.status });
      const plan = planAlerts(config, body.alerts);
      for (const x of [...plan.ignored, ...plan.rejected]) metrics.alertsIgnored.inc({ reason: x.kind });
      if (plan.ignored.length || plan.rejected.length) {
        request.log.warn(
          {
            ignored: plan.ignored.length,
            rejected: plan.rejected.length,
            examples: [...plan.rejected, ...plan.ignored]
              .slice(0, 5)
              .map((x) => `${x.service ?? '?'}@${x.host ?? '?'}: ${x.reason}`),
          },
          'alerts not acted on',
        );
        await deps.audit?.record({
          time: new Date().toISOString(),
          host: '-',
          service: '-',
          workflowId: '-',
          event: AUDIT_EVENTS.alertsNotActedOn,
          decision: 'ignore',
          reason: `${plan.ignored.length} ignored, ${plan.rejected.length} rejected`,
          detail: JSON.stringify([...plan.rejected, ...plan.ignored].slice(0, 20).map(shown)),
        });
      }
      const resendKey = plan.signals.length ? ResendLedger.key(body.alerts, plan.signals) : '';
      const startedAt = Date.now();
      const accepted = resends.take(resendKey);
      if (accepted.size) {
        request.log.info(
          { signals: plan.signals.length, acceptedBefore: accepted.size },
          'a resend of a delivery answered 503: sending only the signals Temporal did not accept',
        );
      }
      try {
        const delivered = await deliverPlan(deps.client, config, plan.signals, {
          pool,
          timeoutMs: config.api.temporalTimeoutMs,
          accepted,
        });
        if (resendKey) resends.succeeded(resendKey);
        // Accepted: a replayable input for `selfheal simulate --alerts` (not awaited: never holds a reply).
        void recorder?.record(body);
        return {
          status: 'ok' as const,
          received: body.alerts.length,
          accepted: delivered.map((d) => ({
            host: d.host,
            service: d.service,
            status: d.status,
            alertnames: d.alertnames,
            workflowId: d.workflowId,
            ...(d.note ? { note: d.note } : {}),
          })),
          ignored: plan.ignored.map(shown),
          rejected: plan.rejected.map(shown),
        };
      } catch (err) {
        if (resendKey) resends.failed(resendKey, accepted, startedAt);
        request.log.error(
          { err: (err as Error).message, signals: plan.signals.length, accepted: accepted.size },
          'Temporal did not accept the alerts',
        );
        return reply
          .code(503)
          .header('retry-after', '10')
          .send({
            error: 'Service Unavailable',
            message: isUnavailable(err)
              ? 'Temporal is unreachable; nothing was lost, retry later'
              : `Temporal did not accept every signal (${(err as Error).message}); retry later`,
            retryable: true,
          });
      }
    },
  );
};
