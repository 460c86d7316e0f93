// The HTTP API as a Fastify plugin: Alertmanager webhook, service state and human actions,
// health and metrics. buildApp() wraps it in an instance configured from the config.
import type { Client } from '@temporalio/client';
import type { ServerOptions as HttpsOptions } from 'node:https';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AuditLog } from '../activities/audit';
import { ServiceActions } from '../client/actions';
import type { Config } from '../config/config';
import type { SelfhealMetrics } from '../metrics/metrics';
import { breakerRoutes } from './routes/breaker';
import { healthRoutes } from './routes/health';
import { serviceRoutes } from './routes/services';
import { webhookRoutes } from './routes/webhook';

export interface AppDeps {
  config: Config;
  client: Client;
  metrics: SelfhealMetrics;
  actions: ServiceActions;
  audit?: AuditLog;
}

const REASON: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
};

export const selfhealApi: FastifyPluginAsyncTypebox<AppDeps> = async (app, deps) => {
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route };
    deps.metrics.httpRequests.inc({ ...labels, code: String(reply.statusCode) });
    deps.metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
  });

  // One error handler: clear reasons for client errors, nothing internal for server errors.
  app.setErrorHandler(
    (error: Error & { statusCode?: number; validation?: unknown; validationContext?: string }, request, reply) => {
      const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
      if (error.validation) {
        return reply
          .code(400)
          .send({ error: 'Bad Request', message: `invalid ${error.validationContext ?? 'request'}: ${error.message}` });
      }
      if (status < 500) {
        return reply.code(status).send({ error: REASON[status] ?? 'Error', message: error.message });
      }
      request.log.error({ err: error }, 'request failed');
      return reply.code(500).send({ error: 'Internal Server Error', message: 'internal error; see the selfheal log' });
    },
  );

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

  await app.register(healthRoutes, deps);
  await app.register(webhookRoutes, deps);
  await app.register(serviceRoutes, deps);
  await app.register(breakerRoutes, deps);
};

export interface BuildOptions {
  logger?: FastifyServerOptions['logger'];
  /** Serve HTTPS with these options (from api.tls). */
  https?: HttpsOptions;
}

export async function buildApp(
  deps: Omit<AppDeps, 'actions'> & { actions?: ServiceActions },
  opts: BuildOptions = {},
): Promise<FastifyInstance> {
  const actions = deps.actions ?? new ServiceActions(deps.client, deps.config, deps.config.api.temporalTimeoutMs);
  // One instance type for the routes: with `https` Fastify's Server type parameter is https.Server.
  const app = Fastify({
    bodyLimit: deps.config.api.bodyLimitBytes,
    logger: opts.logger ?? false,
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
    ...(opts.https ? { https: opts.https } : {}),
  }) as unknown as FastifyInstance;
  await app.register(selfhealApi, { ...deps, actions });
  return app;
}
