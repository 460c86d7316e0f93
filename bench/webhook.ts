// 2. The webhook end to end: the real Fastify app (buildApp) with a real Temporal client against a
// real dev server, real HTTP on loopback from a separate load-generator process, a control worker
// and host workers running the workflows the signals start.
import type { FastifyInstance } from 'fastify';
import { AuditLog } from '../src/activities/audit';
import { buildApp } from '../src/api/app';
import type { Config } from '../src/config/config';
import { createMetrics } from '../src/metrics/metrics';
import { workflowStateSource } from '../src/metrics/state-source';
import { ServiceActions } from '../src/client/actions';
import { stateQuery, workflowIdFor } from '../src/workflows/definitions';
import {
  TOKEN,
  distinctAlertsPayload,
  envelope,
  fleet,
  fleetConfig,
  mixedStormAlerts,
  singleAlertPayload,
  tempDir,
  type FleetService,
} from './lib/fixtures';
import { LoadGenerator, type LoadJob, type LoadResult } from './lib/loadgen';
import { percentiles, spread, type Percentiles, type Spread } from './lib/stats';
import {
  cpuDelta,
  cpuSeconds,
  processMemory,
  threadCpu,
  treeRssMiB,
  type MemorySnapshot,
  type ThreadCpu,
} from './lib/system';
import { startBenchWorkers, startDevServer } from './lib/temporal';

export interface ScenarioRound {
  requests: number;
  elapsedMs: number;
  rps: number;
  latency: Percentiles;
  statuses: Record<string, number>;
  errors: number;
  /** CPU seconds used during the round by the dev server, this process (API + workers, by thread) and the load generator. */
  cpu: { temporal: number; selfheal: ThreadCpu; loadgen: number };
}

export interface CpuPerRequest {
  /** The Temporal dev server process. */
  temporal: number;
  /** This process in total: API, client, workers. */
  selfheal: number;
  /** Its main JS thread: Fastify, the gRPC client, activities. */
  selfhealMain: number;
  /** Its workflow thread: the entity workflows handling the signals. */
  selfhealWorkflow: number;
  /** Its SDK core threads (Rust): worker polling and completions. */
  selfhealCore: number;
  loadgen: number;
}

export interface ScenarioResult {
  key: string;
  title: string;
  alertsPerRequest: number;
  /** Temporal signals (signal-with-start or signal) each accepted request causes. */
  signalsPerRequest: number;
  bodyBytes: number;
  expectedStatus: number;
  rounds: ScenarioRound[];
  rps: Spread;
  signalsPerSec: Spread;
  p50: Spread;
  p95: Spread;
  p99: Spread;
  /** Percentiles over all rounds pooled. */
  pooled: Percentiles & { n: number };
  /** CPU milliseconds per request, by process and thread group (median over rounds). */
  cpuMsPerRequest: CpuPerRequest;
  unexpectedStatuses: number;
  /** The first response with an unexpected status (status: body). */
  firstUnexpected: string | null;
  sampleResponse: { accepted?: number; ignored?: number; rejected?: number; error?: string } | null;
}

export interface WebhookResults {
  services: number;
  hosts: string[];
  concurrency: number;
  rounds: number;
  devServerStartSeconds: number;
  workers: string;
  policyNote: string;
  scenarios: ScenarioResult[];
  /** Per-round ratios (same round, interleaved scenarios). */
  ratios: Record<string, { description: string; value: Spread }>;
  hotWorkflow: { workflowId: string; historyLength: number; run: number; duplicateAlerts: number | null } | null;
  memory: { selfhealAfter: MemorySnapshot; temporalRssMiB: number | null };
}

interface Scenario {
  key: string;
  title: string;
  alertsPerRequest: number;
  signalsPerRequest: number;
  bodies: string[];
  token: string;
  requests: number;
  expectedStatus: number;
}

type RawRound = ScenarioRound & { latencies: number[] };

function summarise(
  s: Scenario,
  rounds: RawRound[],
  sample: string | null,
  firstUnexpected: string | null,
): ScenarioResult {
  const all = rounds.flatMap((r) => r.latencies);
  const pooled = percentiles(all);
  let sampleResponse: ScenarioResult['sampleResponse'] = null;
  try {
    const b = JSON.parse(sample ?? 'null') as {
      accepted?: unknown[];
      ignored?: unknown[];
      rejected?: unknown[];
      message?: string;
    } | null;
    if (b) {
      sampleResponse = b.accepted
        ? { accepted: b.accepted.length, ignored: b.ignored?.length, rejected: b.rejected?.length }
        : { error: b.message };
    }
  } catch {
    sampleResponse = { error: 'not JSON' };
  }
  const clean = rounds.map(({ latencies: _l, ...r }) => r);
  const med = (f: (r: ScenarioRound) => number) => spread(clean.map(f)).median;
  return {
    key: s.key,
    title: s.title,
    alertsPerRequest: s.alertsPerRequest,
    signalsPerRequest: s.expectedStatus === 200 ? s.signalsPerRequest : 0,
    bodyBytes: Buffer.byteLength(s.bodies[0]),
    expectedStatus: s.expectedStatus,
    rounds: clean,
    rps: spread(clean.map((r) => r.rps)),
    signalsPerSec: spread(clean.map((r) => r.rps * (s.expectedStatus === 200 ? s.signalsPerRequest : 0))),
    p50: spread(clean.map((r) => r.latency.p50)),
    p95: spread(clean.map((r) => r.latency.p95)),
    p99: spread(clean.map((r) => r.latency.p99)),
    pooled: { ...pooled, n: all.length },
    cpuMsPerRequest: {
      temporal: med((r) => (r.cpu.temporal * 1000) / r.requests),
      selfheal: med((r) => (r.cpu.selfheal.total * 1000) / r.requests),
      selfhealMain: med((r) => (r.cpu.selfheal.main * 1000) / r.requests),
      selfhealWorkflow: med((r) => (r.cpu.selfheal.workflow * 1000) / r.requests),
      selfhealCore: med((r) => (r.cpu.selfheal.core * 1000) / r.requests),
      loadgen: med((r) => (r.cpu.loadgen * 1000) / r.requests),
    },
    unexpectedStatuses: clean.reduce(
      (n, r) => n + Object.entries(r.statuses).reduce((m, [c, k]) => m + (c === String(s.expectedStatus) ? 0 : k), 0),
      0,
    ),
    firstUnexpected,
    sampleResponse,
  };
}

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  if (!addr || typeof addr !== 'object') throw new Error('the API did not bind');
  return `http://127.0.0.1:${addr.port}`;
}

export async function runWebhookBench(
  log: (l: string) => void,
  opts: { services: number; rounds: number; concurrency: number },
): Promise<WebhookResults> {
  const hosts = ['node-a', 'node-b'];
  const services: FleetService[] = fleet(opts.services, hosts);
  const t = await startDevServer(opts.services);
  log(`  dev server ready in ${t.startSeconds.toFixed(1)} s (${t.address}, pid ${t.server.pid})`);
  const policyNote =
    'validationWindow 30m, so every workflow the webhook starts stays in `validating` (steady load, no restarts mid-bench)';
  const config: Config = fleetConfig({
    services,
    address: t.address,
    dataDir: tempDir(),
    policy: 'validationWindow: 30m',
  });
  const metrics = createMetrics();
  metrics.initServices(config);
  const workers = await startBenchWorkers(t, config, hosts, metrics);
  const actions = new ServiceActions(t.client, config, config.api.temporalTimeoutMs);
  metrics.setStateSource(workflowStateSource(actions, config));
  const app = await buildApp({ config, client: t.client, metrics, actions, audit: new AuditLog(config.audit.file) });
  const base = await listen(app);
  const loadgen = LoadGenerator.start();
  try {
    const single = services.map((s, i) => JSON.stringify(singleAlertPayload(s, 1000 + i)));
    const half = Math.floor(opts.services / 2);
    const distinctN = Math.min(100, half);
    const distinct = [
      JSON.stringify(distinctAlertsPayload(services.slice(0, distinctN), 21)),
      JSON.stringify(distinctAlertsPayload(services.slice(half, half + distinctN), 22)),
    ];
    const storm = mixedStormAlerts(services, 23);
    const stormBody = JSON.stringify(envelope(storm.alerts));
    const stormSignals = storm.composition.distinctFiring + storm.composition.resolvedConfigured;

    const scenarios: Scenario[] = [
      {
        key: 'single',
        title: '(a) 1 alert',
        alertsPerRequest: 1,
        signalsPerRequest: 1,
        bodies: single,
        token: TOKEN,
        requests: 300,
        expectedStatus: 200,
      },
      {
        key: 'unauthorized',
        title: 'wrong token → 401 (1-alert body)',
        alertsPerRequest: 1,
        signalsPerRequest: 0,
        bodies: single,
        token: 'wrong-token',
        requests: 1000,
        expectedStatus: 401,
      },
      {
        key: 'distinct100',
        title: `(b) ${distinctN} alerts, distinct services`,
        alertsPerRequest: distinctN,
        signalsPerRequest: distinctN,
        bodies: distinct,
        token: TOKEN,
        requests: 24,
        expectedStatus: 200,
      },
      {
        key: 'storm1000',
        title: `(c) ${storm.composition.total} alerts, mostly duplicates`,
        alertsPerRequest: storm.composition.total,
        signalsPerRequest: stormSignals,
        bodies: [stormBody],
        token: TOKEN,
        requests: 40,
        expectedStatus: 200,
      },
      {
        key: 'unauthorizedStorm',
        title: `wrong token → 401 (${storm.composition.total}-alert body)`,
        alertsPerRequest: storm.composition.total,
        signalsPerRequest: 0,
        bodies: [stormBody],
        token: 'wrong-token',
        requests: 200,
        expectedStatus: 401,
      },
    ];

    const job = (s: Scenario, requests: number): LoadJob => ({
      url: `${base}/selfheal/trigger`,
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}` },
      bodies: s.bodies,
      requests,
      concurrency: opts.concurrency,
      maxMs: 60_000,
      expectStatus: s.expectedStatus,
    });

    // Warm-up: start every workflow once (measured rounds then hit existing workflows, as repeated
    // Alertmanager deliveries do), and warm the JIT on every path.
    const w0 = performance.now();
    for (const s of scenarios) await loadgen.run(job(s, Math.min(s.requests, s.key === 'single' ? 200 : 10)));
    await loadgen.run(job(scenarios[2], 2));
    log(`  warm-up done in ${((performance.now() - w0) / 1000).toFixed(1)} s`);

    const perScenario = new Map<string, RawRound[]>();
    const samples = new Map<string, string | null>();
    const unexpected = new Map<string, string>();
    for (let r = 0; r < opts.rounds; r++) {
      for (const s of scenarios) {
        const tc0 = cpuSeconds(t.server.pid) ?? 0;
        const sc0 = threadCpu();
        const res: LoadResult = await loadgen.run(job(s, s.requests));
        const sc = cpuDelta(sc0, threadCpu());
        const tc = (cpuSeconds(t.server.pid) ?? 0) - tc0;
        const round = {
          requests: res.completed,
          elapsedMs: res.elapsedMs,
          rps: (res.completed / res.elapsedMs) * 1000,
          latency: percentiles(res.latenciesMs),
          statuses: res.statuses,
          errors: res.errors,
          cpu: { temporal: tc, selfheal: sc, loadgen: res.clientCpuMs / 1000 },
          latencies: res.latenciesMs,
        };
        if (!perScenario.has(s.key)) perScenario.set(s.key, []);
        perScenario.get(s.key)!.push(round);
        if (!samples.has(s.key)) samples.set(s.key, res.sampleBody);
        if (res.unexpected && !unexpected.has(s.key)) unexpected.set(s.key, res.unexpected);
        if (res.errors) log(`  ${s.key}: ${res.errors} transport errors (first: ${res.firstError})`);
      }
      log(`  round ${r + 1}/${opts.rounds} done`);
    }

    const results = scenarios.map((s) =>
      summarise(s, perScenario.get(s.key)!, samples.get(s.key) ?? null, unexpected.get(s.key) ?? null),
    );
    const byKey = Object.fromEntries(results.map((x) => [x.key, x]));
    const perRound = (f: (i: number) => number) => spread(Array.from({ length: opts.rounds }, (_, i) => f(i)));
    const rounds = (k: string) => byKey[k].rounds;
    const ratios: WebhookResults['ratios'] = {
      unauthorizedVsSingleRps: {
        description: '401 requests/s ÷ accepted 1-alert requests/s (same round)',
        value: perRound((i) => rounds('unauthorized')[i].rps / rounds('single')[i].rps),
      },
      singleVsUnauthorizedP50: {
        description: 'accepted 1-alert p50 ÷ 401 p50 (how much more an accepted request costs)',
        value: perRound((i) => rounds('single')[i].latency.p50 / rounds('unauthorized')[i].latency.p50),
      },
      distinctVsSingleP50: {
        description: `(b) p50 ÷ (a) p50 (${distinctN}× the signals)`,
        value: perRound((i) => rounds('distinct100')[i].latency.p50 / rounds('single')[i].latency.p50),
      },
      distinctVsSingleSignalsPerSec: {
        description: '(b) signals/s ÷ (a) signals/s (batching gain per signal)',
        value: perRound(
          (i) => (rounds('distinct100')[i].rps * distinctN) / rounds('single')[i].rps / byKey.single.signalsPerRequest,
        ),
      },
      stormVsSingleP50: {
        description: `(c) p50 ÷ (a) p50 (${stormSignals} signals + parsing ${storm.composition.total} alerts)`,
        value: perRound((i) => rounds('storm1000')[i].latency.p50 / rounds('single')[i].latency.p50),
      },
      unauthorizedStormVsStormP50: {
        description: '401 with the 1,000-alert body p50 ÷ accepted 1,000-alert p50',
        value: perRound((i) => rounds('unauthorizedStorm')[i].latency.p50 / rounds('storm1000')[i].latency.p50),
      },
    };

    let hotWorkflow: WebhookResults['hotWorkflow'] = null;
    try {
      const id = workflowIdFor(services[0].host, services[0].name);
      const st = await t.client.workflow.getHandle(id).query(stateQuery);
      hotWorkflow = {
        workflowId: id,
        historyLength: st.historyLength,
        run: st.run,
        duplicateAlerts: st.incident?.duplicateAlerts ?? null,
      };
    } catch (err) {
      log(`  could not query the hot workflow: ${(err as Error).message}`);
    }
    const memory = { selfhealAfter: await processMemory(), temporalRssMiB: treeRssMiB(t.server.pid) };
    return {
      services: opts.services,
      hosts,
      concurrency: opts.concurrency,
      rounds: opts.rounds,
      devServerStartSeconds: t.startSeconds,
      workers: `control worker + ${hosts.length} host workers (FakeManager) in the API process`,
      policyNote,
      scenarios: results,
      ratios,
      hotWorkflow,
      memory,
    };
  } finally {
    await loadgen.stop();
    await app.close();
    await workers.shutdown();
    await t.close();
  }
}
