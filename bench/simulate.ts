// 6. `selfheal simulate`: a typical week of alerts for 50 services through the real workflow on the
// time-skipping test server, simulated hours per wall-clock second. The first round includes
// bundling the workflow code (once per process); the rounds after it do not.
import { simulate } from '../src/simulate/driver';
import { buildReport } from '../src/simulate/report';
import { benchWeek } from './lib/alert-week';
import { spread, type Spread } from './lib/stats';

export interface SimulateResults {
  services: number;
  hosts: number;
  shards: number;
  simulatedHours: number;
  deliveries: number;
  incidents: number;
  restarts: number;
  /** Wall seconds of the first round (includes bundling the workflow code). */
  firstRoundSeconds: number;
  wallSeconds: Spread;
  simulatedHoursPerSecond: Spread;
}

export async function runSimulateBench(
  log: (l: string) => void,
  opts: { services?: number; hosts?: number; rounds?: number } = {},
): Promise<SimulateResults> {
  const n = opts.services ?? 50;
  const hosts = opts.hosts ?? 5;
  const { config, history } = benchWeek(n, hosts);
  const walls: number[] = [];
  let report = null as ReturnType<typeof buildReport> | null;
  let shards = 0;
  const rounds = opts.rounds ?? 3;
  for (let r = 0; r <= rounds; r++) {
    const result = await simulate({ config, history });
    report = buildReport(result, history.source);
    shards = result.shards;
    log(`  round ${r}${r === 0 ? ' (bundles the workflow code)' : ''}: ${(result.wallMs / 1000).toFixed(1)} s`);
    walls.push(result.wallMs / 1000);
  }
  const hours = report!.simulatedHours;
  const steady = walls.slice(1);
  return {
    services: n,
    hosts,
    shards,
    simulatedHours: hours,
    deliveries: history.deliveries.length,
    incidents: report!.total.incidents,
    restarts: report!.total.restarts,
    firstRoundSeconds: walls[0],
    wallSeconds: spread(steady),
    simulatedHoursPerSecond: spread(steady.map((w) => hours / w)),
  };
}
