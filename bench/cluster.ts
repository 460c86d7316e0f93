// 5. The same ingest and storm figures on a real Temporal cluster (the Temporal server on
// PostgreSQL, test/helpers/temporal-cluster.ts, built by scripts/cluster.mjs) and on the embedded dev
// server, side by side in one run:
//   ingest: 1-alert webhook requests/s and p50/p99 (real Fastify app, load generator in a child
//     process) against a raw `client.workflow.signalWithStart` of the same signal at the same
//     concurrency, from this process and from a plain script (the load generator's process with its
//     own client, as the issue's yardstick asks), rounds interleaved;
//   storm: N distinct services alerted at once (requests of 100 alerts, all in flight): time until
//     every request was accepted, and until every workflow is in `validating` (visibility count).
// The control and host workers (FakeManager) and the API run in this process, as in the webhook bench.
import type { FastifyInstance } from 'fastify';
import type { Client } from '@temporalio/client';
import { Client as TemporalClient, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { AuditLog } from '../src/activities/audit';
import { buildApp } from '../src/api/app';
import { signalWithStartService } from '../src/client/signals';
import { createMetrics } from '../src/metrics/metrics';
import { alertFiringSignal } from '../src/workflows/definitions';
import { clusterUnavailable } from '../test/helpers/temporal-cluster';
import { TOKEN, distinctAlertsPayload, fleet, fleetConfig, singleAlertPayload, tempDir } from './lib/fixtures';
import { closedLoop, LoadGenerator, rawAlertPayload, type LoadJob } from './lib/loadgen';
import { percentiles, spread, type Spread } from './lib/stats';
import { clusterTarget, devServerTarget, type Target } from './lib/targets';
import { startBenchWorkers } from './lib/temporal';

export interface IngestRound {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

export interface TargetResult {
  target: Target['name'];
  startSeconds: number;
  webhook: { rounds: IngestRound[]; rps: Spread; p50: Spread; p99: Spread };
  raw: { rounds: IngestRound[]; rps: Spread; p50: Spread; p99: Spread };
  /** Per-round webhook req/s ÷ raw signalWithStart/s. */
  ratio: Spread;
  /** The raw call from a plain script (the load generator's process, its own client), and the ratio to it. */
  script: { rounds: IngestRound[]; rps: Spread; p50: Spread; p99: Spread };
  scriptRatio: Spread;
  storm: {
    services: number;
    requests: number;
    acceptedSeconds: number;
    validatingSeconds: number | null;
    non200: number;
    /** Statuses of the refused answers (503: Temporal did not accept within api.temporalTimeout). */
    refused: Record<string, number>;
    retries: number;
  };
  serverRssMiB: number | null;
  /** The cluster's PostgreSQL (postmaster and backends, PSS); null for the dev server (SQLite in its process). */
  databaseRssMiB: number | null;
}

export interface ClusterResults {
  skipped?: string;
  concurrency: number;
  requestsPerRound: number;
  rounds: number;
  stormServices: number;
  targets: TargetResult[];
}

const HOSTS = ['node-a', 'node-b'];

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  if (!addr || typeof addr !== 'object') throw new Error('the API did not bind');
  return `http://127.0.0.1:${addr.port}`;
}

const summary = (rounds: IngestRound[]) => ({
  rounds,
  rps: spread(rounds.map((r) => r.rps)),
  p50: spread(rounds.map((r) => r.p50)),
  p99: spread(rounds.map((r) => r.p99)),
});

interface Prepared {
  /** One webhook round, one raw round from this process, one from a plain script. */
  round(): Promise<[IngestRound, IngestRound, IngestRound]>;
  storm(): Promise<TargetResult['storm']>;
  close(): Promise<void>;
}

/** The API, workers and clients on one target, warmed up. */
async function prepare(
  target: Target,
  opts: { concurrency: number; requests: number; storm: number },
): Promise<Prepared> {
  const ingest = fleet(200, HOSTS);
  const stormFleet = fleet(200 + opts.storm, HOSTS).slice(200);
  const config = fleetConfig({
    services: [...ingest, ...stormFleet],
    address: target.address,
    dataDir: tempDir(),
    policy: 'validationWindow: 30m',
  });
  const connection = await Connection.connect({ address: target.address });
  const client: Client = new TemporalClient({ connection, namespace: 'default' });
  const native = await NativeConnection.connect({ address: target.address });
  const workers = await startBenchWorkers({ native }, config, HOSTS);
  const metrics = createMetrics();
  metrics.initServices(config);
  const app = await buildApp({ config, client, metrics, audit: new AuditLog(config.audit.file) });
  const base = await listen(app);
  const loadgen = LoadGenerator.start();
  try {
    const bodies = ingest.map((s, i) => JSON.stringify(singleAlertPayload(s, 5000 + i)));
    const job = (requests: number, b = bodies, concurrency = opts.concurrency): LoadJob => ({
      url: `${base}/selfheal/trigger`,
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
      bodies: b,
      requests,
      concurrency,
      maxMs: 120_000,
      expectStatus: 200,
    });
    // The raw SDK call: the same signal-with-start the webhook makes for one alert, nothing else.
    const raw = (n: number) =>
      closedLoop(n, opts.concurrency, (i) => {
        const s = ingest[i % ingest.length];
        return signalWithStartService(client, config, s.host, s.name, alertFiringSignal, rawAlertPayload(`raw-${i}`));
      });
    // Warm-up: every ingest workflow started, JIT warm on both paths.
    await loadgen.run(job(ingest.length));
    await raw(100);
    // The same raw call from a plain script: the load generator's process with its own client.
    const script = (requests: number) =>
      loadgen.run({
        ...job(requests),
        raw: {
          address: target.address,
          namespace: 'default',
          searchAttributes: config.temporal.searchAttributes,
          services: ingest.map((s) => ({ host: s.host, name: s.name })),
        },
      });
    await script(100);
    const round = async (): Promise<[IngestRound, IngestRound, IngestRound]> => {
      const w = await loadgen.run(job(opts.requests));
      const wp = percentiles(w.latenciesMs);
      const x = await raw(opts.requests);
      const xp = percentiles(x.latencies);
      const sc = await script(opts.requests);
      const sp = percentiles(sc.latenciesMs);
      return [
        { rps: (w.completed / w.elapsedMs) * 1000, p50: wp.p50, p99: wp.p99, errors: w.errors },
        { rps: (x.latencies.length / x.elapsedMs) * 1000, p50: xp.p50, p99: xp.p99, errors: x.errors },
        { rps: (sc.completed / sc.elapsedMs) * 1000, p50: sp.p50, p99: sp.p99, errors: sc.errors },
      ];
    };

    const storm = async (): Promise<TargetResult['storm']> => {
      // Storm: every storm service alerted at once, 100 alerts a request, all requests in flight;
      // a request answered other than 200 is sent again (as Alertmanager retries).
      const stormBodies: string[] = [];
      for (let i = 0; i < stormFleet.length; i += 100) {
        stormBodies.push(JSON.stringify(distinctAlertsPayload(stormFleet.slice(i, i + 100), 9000 + i)));
      }
      const t0 = performance.now();
      let pending = stormBodies;
      let non200 = 0;
      let retries = 0;
      const refused: Record<string, number> = {};
      while (pending.length) {
        const res = await Promise.all(pending.map((b) => loadgen.run(job(1, [b], 1))));
        for (const r of res) {
          for (const [code, n] of Object.entries(r.statuses))
            if (code !== '200') refused[code] = (refused[code] ?? 0) + n;
          if (r.errors) refused.transport = (refused.transport ?? 0) + r.errors;
        }
        const failed = pending.filter((_, i) => !res[i].statuses['200']);
        non200 += failed.length;
        if (failed.length) retries++;
        pending = failed;
        if (retries > 20) throw new Error('storm: requests still refused after 20 retries');
      }
      const acceptedSeconds = (performance.now() - t0) / 1000;
      let validatingSeconds: number | null = null;
      const query = `SelfhealPhase = "validating" AND SelfhealService STARTS_WITH "app-"`;
      const deadline = performance.now() + 300_000;
      while (performance.now() < deadline) {
        const { count } = await client.workflow.count(query);
        // The ingest services are validating too (30-minute window): count only the storm's.
        if (count >= stormFleet.length + ingest.filter((s) => s.name.startsWith('app-')).length) {
          validatingSeconds = (performance.now() - t0) / 1000;
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      return {
        services: stormFleet.length,
        requests: stormBodies.length,
        acceptedSeconds,
        validatingSeconds,
        non200,
        refused,
        retries,
      };
    };
    return {
      round,
      storm,
      async close() {
        await loadgen.stop();
        await app.close();
        await workers.shutdown();
        await native.close();
        await connection.close();
      },
    };
  } catch (err) {
    await loadgen.stop();
    await app.close();
    await workers.shutdown();
    await native.close();
    await connection.close();
    throw err;
  }
}

export async function runClusterBench(
  log: (l: string) => void,
  opts = { concurrency: 8, requests: 300, rounds: 5, storm: 1000 },
): Promise<ClusterResults> {
  const base = {
    concurrency: opts.concurrency,
    requestsPerRound: opts.requests,
    rounds: opts.rounds,
    stormServices: opts.storm,
  };
  const why = clusterUnavailable();
  if (why) return { ...base, skipped: why, targets: [] };
  // Both targets up at once, their rounds interleaved: the machine's load drifts, and the
  // comparison between the targets must not depend on which one ran first.
  const targets: Target[] = [];
  const prepared: Prepared[] = [];
  try {
    for (const start of [() => devServerTarget(200 + opts.storm), clusterTarget]) {
      const target = await start();
      targets.push(target);
      log(`  ${target.name} ready in ${target.startSeconds.toFixed(1)} s (${target.address})`);
      prepared.push(await prepare(target, opts));
    }
    const rounds = targets.map(() => [] as [IngestRound, IngestRound, IngestRound][]);
    for (let r = 0; r < opts.rounds; r++) {
      for (let i = 0; i < targets.length; i++) {
        const [w, x, sc] = await prepared[i].round();
        rounds[i].push([w, x, sc]);
        log(
          `  round ${r + 1} ${targets[i].name}: webhook ${w.rps.toFixed(0)}/s, raw ${x.rps.toFixed(0)}/s, script ${sc.rps.toFixed(0)}/s`,
        );
      }
    }
    const results: TargetResult[] = [];
    for (let i = 0; i < targets.length; i++) {
      const storm = await prepared[i].storm();
      log(
        `  storm ${targets[i].name}: accepted in ${storm.acceptedSeconds.toFixed(1)} s, validating in ${storm.validatingSeconds?.toFixed(1)} s`,
      );
      const webhookRounds = rounds[i].map(([w]) => w);
      const rawRounds = rounds[i].map(([, x]) => x);
      const scriptRounds = rounds[i].map(([, , sc]) => sc);
      results.push({
        target: targets[i].name,
        startSeconds: targets[i].startSeconds,
        webhook: summary(webhookRounds),
        raw: summary(rawRounds),
        ratio: spread(webhookRounds.map((w, j) => w.rps / rawRounds[j].rps)),
        script: summary(scriptRounds),
        scriptRatio: spread(webhookRounds.map((w, j) => w.rps / scriptRounds[j].rps)),
        storm,
        serverRssMiB: targets[i].rssMiB(),
        databaseRssMiB: targets[i].dbRssMiB(),
      });
    }
    return { ...base, targets: results };
  } finally {
    for (const p of prepared) await p.close().catch(() => undefined);
    for (const t of targets) await t.close().catch(() => undefined);
  }
}

const f0 = (x: number) => x.toFixed(0);
const range = (s: Spread, f: (x: number) => string = f0) => `${f(s.median)} [${f(s.min)}–${f(s.max)}]`;

export function renderClusterMarkdown(r: ClusterResults): string {
  if (r.skipped) return `Cluster section skipped: ${r.skipped}.`;
  const lines = [
    `| | ${r.targets.map((t) => t.target).join(' | ')} |`,
    `|---|${r.targets.map(() => '---').join('|')}|`,
    `| server ready (s) | ${r.targets.map((t) => t.startSeconds.toFixed(1)).join(' | ')} |`,
    `| webhook, 1 alert: req/s | ${r.targets.map((t) => range(t.webhook.rps)).join(' | ')} |`,
    `| webhook p50 / p99 (ms) | ${r.targets.map((t) => `${range(t.webhook.p50)} / ${range(t.webhook.p99)}`).join(' | ')} |`,
    `| raw signalWithStart/s | ${r.targets.map((t) => range(t.raw.rps)).join(' | ')} |`,
    `| raw p50 / p99 (ms) | ${r.targets.map((t) => `${range(t.raw.p50)} / ${range(t.raw.p99)}`).join(' | ')} |`,
    `| webhook ÷ raw (per round) | ${r.targets.map((t) => range(t.ratio, (x) => x.toFixed(2))).join(' | ')} |`,
    `| raw from a plain script (own process and client)/s | ${r.targets.map((t) => range(t.script.rps)).join(' | ')} |`,
    `| script p50 / p99 (ms) | ${r.targets.map((t) => `${range(t.script.p50)} / ${range(t.script.p99)}`).join(' | ')} |`,
    `| webhook ÷ raw from a script (per round) | ${r.targets.map((t) => range(t.scriptRatio, (x) => x.toFixed(2))).join(' | ')} |`,
    `| storm: ${r.stormServices} services, all accepted (s) | ${r.targets
      .map(
        (t) =>
          `${t.storm.acceptedSeconds.toFixed(1)} (${t.storm.requests} requests; ${t.storm.non200} answers refused${
            t.storm.non200
              ? `: ${Object.entries(t.storm.refused)
                  .map(([k, n]) => `${n}× ${k}`)
                  .join(', ')}, sent again`
              : ''
          })`,
      )
      .join(' | ')} |`,
    `| storm: all in \`validating\` (s) | ${r.targets.map((t) => t.storm.validatingSeconds?.toFixed(1) ?? 'not within 300 s').join(' | ')} |`,
    `| server RSS after (MiB) | ${r.targets.map((t) => t.serverRssMiB?.toFixed(0) ?? '?').join(' | ')} |`,
    `| PostgreSQL PSS after (MiB, postmaster + backends) | ${r.targets.map((t) => t.databaseRssMiB?.toFixed(0) ?? '– (SQLite in the server)').join(' | ')} |`,
  ];
  return [
    `Both servers up at once; concurrency ${r.concurrency}, ${r.requestsPerRound} requests a round, ${r.rounds} rounds interleaved (dev server webhook, raw, raw from a script; the same on the cluster); then one storm on each. Median [min–max] over rounds.`,
    '',
    ...lines,
  ].join('\n');
}
