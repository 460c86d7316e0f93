import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { breakerCommand, breakerStatus, scopeFor } from '../../client/breaker';
import { ActionError } from '../../client/call';
import type { BreakerView } from '../../workflows/fleet-definitions';
import type { AppDeps } from '../app';
import { humanGuards } from '../auth';
import { BreakerCommandBody, BreakerStatusSchema, type BreakerStatus } from '../schemas/breaker';
import { ErrorSchema } from '../schemas/common';

const errors = { 400: ErrorSchema, 401: ErrorSchema, 503: ErrorSchema };

export function breakerStatusOf(v: BreakerView | null): BreakerStatus {
  if (!v)
    return { started: false, scopes: [], restartsInFlight: 0, restartsInFlightByHost: {}, held: [], openIncidents: 0 };
  return {
    started: true,
    scopes: v.scopes.map((s) => ({
      scope: s.scope,
      state: s.state,
      since: s.sinceIso,
      manual: s.manual,
      armed: s.armed,
      trial: s.trial,
      by: s.by,
      reason: s.reason,
      open: s.count.open,
      total: s.count.total,
      affected: s.count.affected,
    })),
    restartsInFlight: v.restartsInFlight,
    restartsInFlightByHost: v.restartsInFlightByHost,
    held: v.held,
    openIncidents: v.openIncidents,
  };
}

/** GET /breaker (read token), POST /breaker/trip and /breaker/reset (admin token). */
export const breakerRoutes: FastifyPluginAsyncTypebox<AppDeps> = async (app, deps) => {
  const { config, client } = deps;
  const { readGuard, adminGuard } = humanGuards(config.api);

  app.setErrorHandler((err, _request, reply) => {
    if (!(err instanceof ActionError)) throw err;
    const code = err.code === 'unavailable' ? 503 : 400;
    return reply.code(code).send({
      error: code === 503 ? 'Service Unavailable' : 'Bad Request',
      message: err.message,
      ...(code === 503 ? { retryable: true } : {}),
    });
  });

  app.get(
    '/breaker',
    { onRequest: readGuard, schema: { response: { 200: BreakerStatusSchema, ...errors } } },
    async () => breakerStatusOf(await breakerStatus(client, config.api.temporalTimeoutMs)),
  );

  for (const action of ['trip', 'reset'] as const) {
    app.post(
      `/breaker/${action}`,
      {
        onRequest: adminGuard,
        schema: { body: BreakerCommandBody, response: { 200: BreakerStatusSchema, ...errors } },
      },
      async (request) => {
        const body = request.body ?? {};
        const scope = scopeFor(config, body.scope);
        request.log.info({ action, scope, by: body.by ?? 'api' }, 'breaker command');
        const v = await breakerCommand(
          client,
          { action, scope, by: body.by ?? 'api', reason: body.reason ?? null },
          Math.max(config.api.temporalTimeoutMs, 10_000),
        );
        return breakerStatusOf(v);
      },
    );
  }
};
