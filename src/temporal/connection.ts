// Connections to Temporal from the configuration: embedded dev server, a cluster, or Temporal Cloud
// (TLS and/or API key).
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from '@temporalio/client';
import type { NativeConnectionOptions } from '@temporalio/worker';
import type { Config } from '../config/config';
import { closeSafeRetryInterceptor } from './grpc-retry';

/** host:port the clients dial. */
export function temporalAddress(config: Config): string {
  return config.temporal.embedded ? `127.0.0.1:${config.temporal.port}` : config.temporal.address;
}

function tlsOptions(config: Config): ConnectionOptions['tls'] {
  const t = config.temporal.tls;
  if (!t) return undefined;
  const read = (f: string | null) => (f ? readFileSync(f) : undefined);
  const crt = read(t.certFile);
  const key = read(t.keyFile);
  return {
    serverNameOverride: t.serverName ?? undefined,
    serverRootCACertificate: read(t.caFile),
    clientCertPair: crt && key ? { crt, key } : undefined,
  };
}

export function clientConnectionOptions(config: Config, address = temporalAddress(config)): ConnectionOptions {
  return {
    address,
    tls: tlsOptions(config),
    apiKey: config.temporal.apiKey ?? undefined,
    connectTimeout: '5s',
    interceptors: [closeSafeRetryInterceptor()],
  };
}

export function nativeConnectionOptions(config: Config, address = temporalAddress(config)): NativeConnectionOptions {
  return {
    address,
    tls: tlsOptions(config) as NativeConnectionOptions['tls'],
    apiKey: config.temporal.apiKey ?? undefined,
  };
}
