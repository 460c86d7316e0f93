import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppDeps } from '../app';

export const healthRoutes: FastifyPluginAsyncTypebox<AppDeps> = async (app, deps) => {
  app.get('/healthz', { schema: { response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));

  app.get(
    '/readyz',
    {
      schema: {
        response: {
          200: Type.Object({ status: Type.Literal('ready'), temporal: Type.String() }),
          503: Type.Object({ status: Type.Literal('not-ready'), temporal: Type.String(), message: Type.String() }),
        },
      },
    },
    async (request, reply) => {
      try {
        await deps.client.connection.withDeadline(Date.now() + 2_000, () =>
          deps.client.connection.workflowService.getSystemInfo({}),
        );
        deps.metrics.temporalUp.set(1);
        return { status: 'ready' as const, temporal: 'reachable' };
      } catch (err) {
        deps.metrics.temporalUp.set(0);
        request.log.warn({ err: (err as Error).message }, 'readiness: Temporal unreachable');
        return reply.code(503).send({ status: 'not-ready', temporal: 'unreachable', message: (err as Error).message });
      }
    },
  );

  app.get('/metrics', async (_request, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.header('content-type', deps.metrics.registry.contentType).send(body);
  });
};
