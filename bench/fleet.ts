// 5. Fleet safety under an alert storm on the real dev server: 1,000 guarded services on 10 hosts go
// down at once (one shared cause), the breaker on with its defaults. How long until it trips, how
// many restarts ran before (the target: none beyond the threshold), how many MassFailure
// escalations went out (one), and what the coordinator's history costs.
import { breakerStatus } from '../src/client/breaker';
import { signalWithStartService } from '../src/client/signals';
import { Pool } from '../src/client/pool';
import { alertFiringSignal } from '../src/workflows/definitions';
import { WebhookSink } from '../test/helpers/webhook-sink';
import { fleet, fleetConfig, tempDir } from './lib/fixtures';
import { sleep } from './lib/stats';
import { startBenchWorkers, startDevServer } from './lib/temporal';

export interface FleetBenchResults {
  services: number;
  hosts: number;
  validationWindowSeconds: number;
  threshold: string;
  /** From the first alert until the fleet breaker reads open. */
  tripSeconds: number | null;
  /** Open incidents the coordinator counted when it tripped (threshold + 1 at best). */
  openAtTrip: number | null;
  /** Alerts accepted by Temporal when the breaker tripped. */
  acceptedAtTrip: number;
  acceptSeconds: number;
  /** Restarts executed before the trip, and in total once every validation window had passed. */
  restartsBeforeTrip: number;
  restartsTotal: number;
  heldAtEnd: number;
  massFailureEscalations: number;
  coordinator: { historyLength: number; run: number };
}

export async function runFleetBench(
  log: (l: string) => void,
  opts: { services?: number; hosts?: number } = {},
): Promise<FleetBenchResults> {
  const n = opts.services ?? 1000;
  const hostNames = Array.from({ length: opts.hosts ?? 10 }, (_, i) => `h${String(i).padStart(2, '0')}`);
  const services = fleet(n, hostNames);
  const sink = await WebhookSink.start();
  const t = await startDevServer(n);
  const validationWindowSeconds = 20;
  const config = fleetConfig({
    services,
    address: t.address,
    dataDir: tempDir(),
    policy: `validationWindow: ${validationWindowSeconds}s, verifyTimeout: 5s, verifyStableFor: 0s`,
    escalationUrl: sink.url,
  });
  const workers = await startBenchWorkers(t, config, hostNames);
  const restarts = () => services.reduce((a, s) => a + workers.fake.restartsOf(s.name), 0);
  try {
    for (const s of services) workers.fake.stop(s.name);
    const pool = new Pool(16);
    let accepted = 0;
    const t0 = performance.now();
    const storm = Promise.all(
      services.map((s) =>
        pool.run(async () => {
          await signalWithStartService(t.client, config, s.host, s.name, alertFiringSignal, {
            alertnames: ['ServiceStalled'],
          });
          accepted++;
        }),
      ),
    );
    let tripSeconds: number | null = null;
    let openAtTrip: number | null = null;
    let acceptedAtTrip = 0;
    let restartsBeforeTrip = 0;
    const watch = (async () => {
      while (tripSeconds === null && performance.now() - t0 < 300_000) {
        const v = await breakerStatus(t.client, 5_000).catch(() => null);
        const f = v?.scopes.find((s) => s.scope === 'fleet');
        if (f && f.state !== 'closed') {
          tripSeconds = (performance.now() - t0) / 1000;
          openAtTrip = f.count.open;
          acceptedAtTrip = accepted;
          restartsBeforeTrip = restarts();
          return;
        }
        await sleep(100);
      }
    })();
    await storm;
    const acceptSeconds = (performance.now() - t0) / 1000;
    log(`  ${n} alerts accepted in ${acceptSeconds.toFixed(1)} s`);
    await watch;
    log(
      `  breaker tripped after ${tripSeconds ?? '-'} s with ${openAtTrip} open; restarts before: ${restartsBeforeTrip}`,
    );
    // Past every validation window, plus time for any restart that would have gone through.
    await sleep((validationWindowSeconds + 30) * 1000);
    const v = await breakerStatus(t.client, 10_000);
    const results: FleetBenchResults = {
      services: n,
      hosts: hostNames.length,
      validationWindowSeconds,
      threshold: `fleet: more than ${config.fleet.breaker.fleet.maxOpenIncidents} open or ${config.fleet.breaker.fleet.maxOpenShare * 100}% of ≥${config.fleet.breaker.fleet.minServicesForShare}; host: more than ${config.fleet.breaker.host.maxOpenIncidents} or ${config.fleet.breaker.host.maxOpenShare * 100}%`,
      tripSeconds,
      openAtTrip,
      acceptedAtTrip,
      acceptSeconds,
      restartsBeforeTrip,
      restartsTotal: restarts(),
      heldAtEnd: v?.held.length ?? 0,
      massFailureEscalations: sink.events().filter((e) => e.event === 'MassFailure').length,
      coordinator: { historyLength: v?.historyLength ?? 0, run: v?.run ?? 0 },
    };
    log(`  ${JSON.stringify(results)}`);
    return results;
  } finally {
    await workers.shutdown();
    await t.close();
    await sink.close();
  }
}

if (require.main === module) {
  runFleetBench((l) => process.stdout.write(`${l}\n`)).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
