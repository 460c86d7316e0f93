// Listens and closes gracefully. Refuses to serve without tokens unless explicitly insecure on loopback.
import { readFileSync } from 'node:fs';
import type { ServerOptions as HttpsOptions } from 'node:https';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import type { Config } from '../config/config';
import { isLoopback } from '../util/parse';
import { buildApp, type AppDeps } from './app';

export class ApiSecurityError extends Error {
  override name = 'ApiSecurityError';
}

export function checkApiSecurity(config: Config): void {
  const missing = [!config.api.token && 'api.token', !config.api.adminToken && 'api.adminToken'].filter(Boolean);
  if (missing.length === 0) return;
  if (config.api.insecure && isLoopback(config.api.host)) return;
  throw new ApiSecurityError(
    `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not set: the API refuses to start without tokens. ` +
      'Set them (e.g. token: ${SELFHEAL_TOKEN}) or, for local experiments only, listen on a loopback address with api.insecure: true.',
  );
}

/** HTTPS options from api.tls: mutual TLS (a client certificate signed by clientCaFile) when it is set. */
export function httpsOptions(config: Config): HttpsOptions | undefined {
  const tls = config.api.tls;
  if (!tls) return undefined;
  const read = (file: string, key: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`api.tls.${key}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  const options: HttpsOptions = { cert: read(tls.certFile!, 'certFile'), key: read(tls.keyFile!, 'keyFile') };
  if (tls.clientCaFile) {
    Object.assign(options, { ca: read(tls.clientCaFile, 'clientCaFile'), requestCert: true, rejectUnauthorized: true });
  }
  return options;
}

export const API_LOGGER: FastifyServerOptions['logger'] = {
  level: process.env.SELFHEAL_LOG_LEVEL?.toLowerCase() ?? 'info',
  redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: '[redacted]' },
};

export interface ApiServer {
  app: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

export async function startApiServer(
  deps: Omit<AppDeps, 'actions'> & Partial<Pick<AppDeps, 'actions'>>,
  opts: { logger?: FastifyServerOptions['logger'] } = {},
): Promise<ApiServer> {
  checkApiSecurity(deps.config);
  const https = httpsOptions(deps.config);
  const app = await buildApp(deps, { logger: opts.logger ?? API_LOGGER, https });
  const { host, port } = deps.config.api;
  try {
    await app.listen({ host, port });
  } catch (err) {
    await app.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new Error(`api.listen ${host}:${port} is already in use; pick another port in api.listen`, { cause: err });
    }
    throw err;
  }
  const addr = app.server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    app,
    url: `${https ? 'https' : 'http'}://${shownHost}:${actualPort}`,
    close: () => app.close(),
  };
}
