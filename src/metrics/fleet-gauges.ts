// Fleet-safety gauges, read from the fleet coordinator at scrape time: the breaker of each scope and
// the restarts in flight. A coordinator that has not started yet means every breaker is closed.
import { Gauge, type Registry } from 'prom-client';
import type { BreakerView } from '../workflows/fleet-definitions';

export type FleetSource = () => Promise<BreakerView | null>;

/** `selfhealing_breaker_open`: 1 open, 0.5 half-open (one trial restart let through), 0 closed. */
export const BREAKER_VALUE = { open: 1, 'half-open': 0.5, closed: 0 } as const;

export function createFleetGauges(registry: Registry, opts: { readCacheMs?: number } = {}) {
  let source: FleetSource | null = null;
  let inflight: Promise<BreakerView | null | undefined> | null = null;
  const readCacheMs = opts.readCacheMs ?? 1_000;
  /** One coordinator read per scrape; undefined when it could not be read (the gauges then go absent). */
  const read = (): Promise<BreakerView | null | undefined> => {
    if (!source) return Promise.resolve(undefined);
    if (!inflight) {
      const current = source().catch(() => undefined);
      inflight = current;
      void current.finally(() =>
        setTimeout(() => (inflight === current ? (inflight = null) : undefined), readCacheMs).unref(),
      );
    }
    return inflight;
  };
  new Gauge({
    name: 'selfhealing_breaker_open',
    help: 'Mass-failure breaker of each scope (fleet, host:<name>): 1 open (automatic restarts stop), 0.5 half-open (one trial restart), 0 closed.',
    labelNames: ['scope'] as const,
    registers: [registry],
    async collect() {
      const v = await read();
      this.reset();
      if (v === undefined) return;
      if (v === null) this.set({ scope: 'fleet' }, 0);
      else for (const s of v.scopes) this.set({ scope: s.scope }, BREAKER_VALUE[s.state]);
    },
  });
  new Gauge({
    name: 'selfhealing_restarts_in_flight',
    help: 'Restarts granted a slot by the fleet coordinator and not finished yet (limits fleet.maxRestartsInFlight[PerHost]).',
    registers: [registry],
    async collect() {
      const v = await read();
      this.reset();
      if (v !== undefined) this.set(v?.restartsInFlight ?? 0);
    },
  });
  return {
    setSource(s: FleetSource) {
      source = s;
    },
  };
}
