// A typical week of alerts for a fleet, deterministic (seeded): mostly quiet services with a few
// outages a day, some blips that clear inside the validation window, some long outages, and a few
// services that flap in bursts. Used by the simulate bench and by examples/simulate/.
import type { IncomingAlert } from '../../src/client/alert-intake';
import type { AlertHistory, Delivery } from '../../src/simulate/history';
import type { Config } from '../../src/config/config';
import { fleetConfig, prng } from './fixtures';

export interface WeekOptions {
  services: { name: string; host: string }[];
  start: number;
  days?: number;
  seed?: number;
  /** Mean outages per service per day (default 2). */
  perDay?: number;
}

const MIN = 60_000;

export function alertWeek(opts: WeekOptions): AlertHistory {
  const rand = prng(opts.seed ?? 11);
  const days = opts.days ?? 7;
  const end = opts.start + days * 24 * 60 * MIN;
  const deliveries: Delivery[] = [];
  const alert = (status: 'firing' | 'resolved', s: { name: string; host: string }, reason: string): IncomingAlert => ({
    status,
    labels: { alertname: 'ServiceStalled', service: s.name, host: s.host, reason, severity: 'critical' },
    annotations: { summary: `${s.name} on ${s.host} is ${reason === 'down' ? 'down' : 'stalled'}` },
  });
  const outage = (s: { name: string; host: string }, at: number, ms: number) => {
    const reason = rand() < 0.5 ? 'down' : 'stalled';
    deliveries.push({ at, alerts: [alert('firing', s, reason)] });
    if (at + ms < end) deliveries.push({ at: at + ms, alerts: [alert('resolved', s, reason)] });
  };
  opts.services.forEach((s, i) => {
    const flapper = i % 10 === 3;
    let t = opts.start + rand() * 12 * 60 * MIN;
    const meanGap = (24 * 60 * MIN) / (opts.perDay ?? 2);
    while (t < end) {
      if (flapper && rand() < 0.3) {
        // A burst: 4 to 8 outages of a few minutes, 8 to 12 minutes apart.
        const n = 4 + Math.floor(rand() * 5);
        for (let k = 0; k < n && t < end; k++) {
          outage(s, Math.round(t), (3 + rand() * 4) * MIN);
          t += (8 + rand() * 4) * MIN;
        }
      } else {
        const kind = rand();
        const ms =
          kind < 0.35 ? (20 + rand() * 80) * 1000 : kind < 0.9 ? (3 + rand() * 20) * MIN : (60 + rand() * 120) * MIN;
        outage(s, Math.round(t), Math.round(ms));
        t += ms;
      }
      // Exponential gaps between outages.
      t += -Math.log(1 - rand()) * meanGap;
    }
  });
  deliveries.sort((a, b) => a.at - b.at);
  return { source: `a generated week (seed ${opts.seed ?? 11})`, deliveries };
}

/** The simulate bench's week: `n` services over `hosts` hosts, the default policy, the seeded week from 2026-11-02. */
export function benchWeek(n: number, hosts = 5): { config: Config; history: AlertHistory } {
  const services = Array.from({ length: n }, (_, i) => ({ name: `svc${i}.service`, host: `host${i % hosts}` }));
  return {
    config: fleetConfig({ services }),
    history: alertWeek({ services, start: Date.parse('2026-11-02T00:00:00Z') }),
  };
}
