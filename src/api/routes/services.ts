import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { pauseDurationProblem } from '../../client/actions';
import { ActionError } from '../../client/call';
import { parseDuration } from '../../policy/duration';
import type { AppDeps } from '../app';
import { humanGuards } from '../auth';
import {
  ActionBody,
  ActionResultSchema,
  ErrorSchema,
  HumanActionSchema,
  ServiceParams,
  ServiceSummarySchema,
} from '../schemas/common';
import { Nullable, OneOf, ServiceStateSchema } from '../schemas/state';

const STATUS_FOR: Record<ActionError['code'], number> = {
  'not-found': 404,
  ambiguous: 400,
  invalid: 400,
  conflict: 409,
  unavailable: 503,
  unreadable: 502,
};

const REASON: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  409: 'Conflict',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

const errors = {
  400: ErrorSchema,
  401: ErrorSchema,
  404: ErrorSchema,
  409: ErrorSchema,
  502: ErrorSchema,
  503: ErrorSchema,
};

export const serviceRoutes: FastifyPluginAsyncTypebox<AppDeps> = async (app, deps) => {
  const { config, actions } = deps;
  const { readGuard, adminGuard } = humanGuards(config.api);

  // What an action could not do, with its status; anything else goes on to the app's error handler.
  app.setErrorHandler((err, _request, reply) => {
    if (!(err instanceof ActionError)) throw err;
    const code = STATUS_FOR[err.code];
    return reply
      .code(code)
      .send({ error: REASON[code], message: err.message, ...(code === 503 ? { retryable: true } : {}) });
  });

  app.get(
    '/services',
    {
      onRequest: readGuard,
      schema: {
        querystring: Type.Object({ exact: Type.Optional(OneOf(['true', 'false'] as const)) }),
        response: {
          200: Type.Object({
            services: Type.Array(ServiceSummarySchema),
            /** `index`: the visibility index, one call, a few seconds behind; `workflows`: each workflow's own state. */
            source: OneOf(['index', 'workflows'] as const),
          }),
          ...errors,
        },
      },
    },
    async (request) => actions.overview({ exact: request.query.exact === 'true' }),
  );

  app.get(
    '/services/:host/:service',
    {
      onRequest: readGuard,
      schema: {
        params: ServiceParams,
        response: {
          200: Type.Object({ summary: ServiceSummarySchema, state: Nullable(ServiceStateSchema) }),
          ...errors,
        },
      },
    },
    async (request) => {
      const svc = actions.resolve(request.params.service, request.params.host);
      const state = await actions.state(svc.host, svc.name);
      return { summary: actions.summaryOf(svc, state), state };
    },
  );

  app.post(
    '/services/:host/:service/:action',
    {
      onRequest: adminGuard,
      schema: {
        params: Type.Object({
          ...ServiceParams.properties,
          action: HumanActionSchema,
        }),
        body: Type.Optional(ActionBody),
        response: { 200: ActionResultSchema, ...errors },
      },
    },
    async (request) => {
      const action = request.params.action;
      const body = request.body ?? {};
      const p = { by: body.by ?? 'api', reason: body.reason };
      const svc = actions.resolve(request.params.service, request.params.host);
      let forMs: number | null = null;
      if (body.for !== undefined) {
        if (action !== 'pause') throw new ActionError('invalid', '"for" applies to pause only');
        forMs = parseDuration(body.for);
        if (!forMs)
          throw new ActionError('invalid', `"for": ${JSON.stringify(body.for)} is not a duration like 30m or 2h`);
        const problem = pauseDurationProblem(forMs, '"for"');
        if (problem) throw new ActionError('invalid', `"for": ${body.for} is ${problem}`);
      }
      request.log.info({ action, host: svc.host, service: svc.name, by: p.by }, 'human action');
      return action === 'pause' ? actions.pause(svc, { ...p, forMs }) : actions[action](svc, p);
    },
  );
};
