// Lookups in a loaded config.
import type { Config, ServiceConfig } from './schema';

/** Services that run on one host. */
export function servicesOnHost(config: Config, host: string): ServiceConfig[] {
  return config.services.filter((s) => s.host === host);
}

const serviceIndex = new WeakMap<Config, Map<string, ServiceConfig>>();

/** The configured service on a host, through an index built once per config (fleets have thousands). */
export function findService(config: Config, host: string, name: string): ServiceConfig | undefined {
  let index = serviceIndex.get(config);
  if (!index) {
    index = new Map(config.services.map((s) => [`${s.host}\u0000${s.name}`, s]));
    serviceIndex.set(config, index);
  }
  return index.get(`${host}\u0000${name}`);
}
