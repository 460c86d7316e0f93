import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { temporalAddress } from '../../temporal/connection';
import type { AppDeps } from '../app';

/**
 * Why Temporal did not answer, as a stable code for unauthenticated callers (gRPC status codes as the
 * client reports them). The client's own text names addresses, TLS and auth details: it goes to the log only.
 */
export const READINESS_REASONS = [
  'timeout',
  'unavailable',
  'unauthenticated',
  'permission-denied',
  'tls',
  'error',
] as const;
export type ReadinessReason = (typeof READINESS_REASONS)[number];

export function readinessReason(err: unknown): ReadinessReason {
  const e = err as { code?: unknown; message?: unknown } | null;
  switch (e?.code) {
    case 4:
      return 'timeout';
    case 14:
      return 'unavailable';
    case 16:
      return 'unauthenticated';
    case 7:
      return 'permission-denied';
  }
  const message = typeof e?.message === 'string' ? e.message : '';
  if (/certificate|tls|ssl|handshake/i.test(message)) return 'tls';
  if (/ECONNREFUSED|Failed to connect|connect ECONN|UNAVAILABLE/i.test(message)) return 'unavailable';
  if (/DEADLINE_EXCEEDED|timed? ?out/i.test(message)) return 'timeout';
  return 'error';
}

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
          503: Type.Object({
            status: Type.Literal('not-ready'),
            temporal: Type.Literal('unreachable'),
            reason: Type.Union(READINESS_REASONS.map((r) => Type.Literal(r))),
            message: Type.Literal('Temporal unreachable'),
          }),
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
        const reason = readinessReason(err);
        request.log.warn(
          { err: (err as Error).message, reason, address: temporalAddress(deps.config) },
          'readiness: Temporal unreachable',
        );
        return reply
          .code(503)
          .send({ status: 'not-ready', temporal: 'unreachable', reason, message: 'Temporal unreachable' } as const);
      }
    },
  );

  app.get('/metrics', async (_request, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.header('content-type', deps.metrics.registry.contentType).send(body);
  });
};
