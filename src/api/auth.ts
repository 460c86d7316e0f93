// Bearer-token checks. Both sides are hashed first so the comparison is constant-time whatever
// the lengths, and no token ever reaches a log line.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function tokenMatches(presented: string | undefined, expected: string | null): boolean {
  if (!expected || presented === undefined) return false;
  return timingSafeEqual(digest(presented), digest(expected));
}

export function bearer(request: FastifyRequest): string | undefined {
  const h = request.headers.authorization;
  if (!h) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(h.trim());
  return m ? m[1].trim() : undefined;
}

/**
 * A preHandler-style guard: passes when any of the accepted tokens matches, or when the API runs
 * without tokens (insecure mode, loopback only).
 */
export function requireToken(tokens: () => (string | null)[], insecure: boolean, what: string) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const accepted = tokens().filter((t): t is string => !!t);
    if (accepted.length === 0 && insecure) return;
    const presented = bearer(request);
    if (presented === undefined) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'Unauthorized', message: `missing bearer token (${what})` });
    }
    if (!accepted.some((t) => tokenMatches(presented, t))) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer error="invalid_token"')
        .send({ error: 'Unauthorized', message: `wrong bearer token (${what})` });
    }
  };
}

/** The two guards of the human-facing routes: reads take either token, actions the admin token. */
export function humanGuards(api: { token: string | null; adminToken: string | null; insecure: boolean }) {
  return {
    readGuard: requireToken(() => [api.adminToken, api.token], api.insecure, 'admin or webhook token'),
    adminGuard: requireToken(() => [api.adminToken], api.insecure, 'admin token'),
  };
}
