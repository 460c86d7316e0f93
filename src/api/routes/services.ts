import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { Type } from '@sinclair/typebox';
import { pauseDurationProblem } from '../../client/actions';
import { ActionError } from '../../client/call';
import { parseDuration } from '../../policy/duration';
import type { AppDeps } from '../app';
import { requireToken } from '../auth';
import {
  ActionBody,
  ActionResultSchema,
  ErrorSchema,
  HumanActionSchema,
  ServiceParams,
  ServiceSummarySchema,
} from '../schemas/common';
import { Nullable, ServiceStateSchema } from '../schemas/state';

const STATUS_FOR: Record<ActionError['code'], number> = {
  'not-found': 404,
  ambiguous: 400,
  invalid: 400,
  conflict: 409,
  unavailable: 503,
  unreadable: 502,
};

function sendActionError(reply: FastifyReply, err: unknown) {
  if (err instanceof ActionError) {
    const code = STATUS_FOR[err.code];
    return reply.code(code).send({
      error:
        { 400: 'Bad Request', 404: 'Not Found', 409: 'Conflict', 502: 'Bad Gateway', 503: 'Service Unavailable' }[
          code
        ] ?? 'Error',
      message: err.message,
      ...(code === 503 ? { retryable: true } : {}),
    });
  }
  throw err;
}

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
  const readGuard = requireToken(
    () => [config.api.adminToken, config.api.token],
    config.api.insecure,
    'admin or webhook token',
  );
  const adminGuard = requireToken(() => [config.api.adminToken], config.api.insecure, 'admin token');

  app.get(
    '/services',
    {
      onRequest: readGuard,
      schema: { response: { 200: Type.Object({ services: Type.Array(ServiceSummarySchema) }), ...errors } },
    },
    async (_request, reply) => {
      try {
        const services = config.temporal.searchAttributes ? await actions.listFromVisibility() : await actions.list();
        return { services };
      } catch (err) {
        return sendActionError(reply, err);
      }
    },
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
    async (request, reply) => {
      try {
        const svc = actions.resolve(request.params.service, request.params.host);
        const state = await actions.state(svc.host, svc.name);
        return { summary: actions.summaryOf(svc, state), state };
      } catch (err) {
        return sendActionError(reply, err);
      }
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
    async (request, reply) => {
      const action = request.params.action;
      const body = request.body ?? {};
      const p = { by: body.by ?? 'api', reason: body.reason };
      try {
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
        switch (action) {
          case 'approve':
            return await actions.approve(svc, p);
          case 'skip':
            return await actions.skip(svc, p);
          case 'pause':
            return await actions.pause(svc, { ...p, forMs });
          case 'resume':
            return await actions.resume(svc, p);
        }
      } catch (err) {
        return sendActionError(reply, err);
      }
    },
  );
};
