// 3. Entity workflows at scale on the real dev server: N workflows started by signal-with-start
// (one per service, through the product's planAlerts + deliverPlan), time to accept and to reach
// `validating`, worker and dev-server memory per guarded service, and the cost of the state read
// behind GET /metrics (a query per workflow up to QUERY_ALL_LIMIT services, the visibility index beyond).
import type { Client } from '@temporalio/client';
import { AuditLog } from '../src/activities/audit';
import { buildApp } from '../src/api/app';
import type { Config } from '../src/config/config';
import { createMetrics } from '../src/metrics/metrics';
import { QUERY_ALL_LIMIT, workflowStateSource } from '../src/metrics/state-source';
import { ServiceActions } from '../src/client/actions';
import { deliverPlan, planAlerts } from '../src/client/alert-intake';
import { WORKFLOW_TYPE, stateQuery, workflowIdFor } from '../src/workflows/definitions';
import { alert, fleet, fleetConfig, prng, tempDir, type FleetService } from './lib/fixtures';
import { LoadGenerator } from './lib/loadgen';
import { sleep, spread, type Spread } from './lib/stats';
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

export interface ScaleStep {
  /** Workflows running after this step. */
  total: number;
  /** Started in this step. */
  started: number;
  /** From the first signal-with-start until Temporal accepted the last one. */
  acceptSeconds: number;
  acceptPerSec: number;
  /** From the first signal until the visibility index shows every workflow in `validating`. */
  allValidatingSeconds: number | null;
  /** State queries of a random sample: how many answered `validating`. */
  sample: { size: number; validating: number; queryMs: Spread };
  selfheal: MemorySnapshot;
  temporalRssMiB: number | null;
  cpu: { temporal: number; selfheal: ThreadCpu };
}

export interface FanOutCase {
  services: number;
  path: 'query' | 'visibility';
  via: 'GET /metrics' | 'ServiceActions.list()' | 'ServiceActions.listFromVisibility()';
  ms: Spread;
  /** CPU seconds per call (median): the dev server and this process (client + the worker answering queries). */
  cpu?: { temporal: number; selfheal: number };
  /** For /metrics: series of selfhealing_service_status in the body; for list calls: summaries returned. */
  series: number;
  healing: number;
}

export interface ExpositionCase {
  services: number;
  /** Time of registry.metrics() with a static state source (no Temporal): the Prometheus text itself. */
  ms: Spread;
  bytes: number;
  lines: number;
}

export interface EntitiesResults {
  hosts: string[];
  policyNote: string;
  maxCachedWorkflows: number;
  devServerStartSeconds: number;
  baseline: { selfheal: MemorySnapshot; temporalRssMiB: number | null };
  workersIdle: { selfheal: MemorySnapshot; temporalRssMiB: number | null };
  steps: ScaleStep[];
  perWorkflow: {
    /** Growth from idle workers to the largest N, divided by N. */
    selfhealRssKiB: number;
    selfhealHeapKiB: number;
    temporalRssKiB: number | null;
    /** The same from the previous step to the last (marginal). */
    marginalSelfhealRssKiB: number;
    marginalTemporalRssKiB: number | null;
  };
  fanOut: FanOutCase[];
  exposition: ExpositionCase[];
  ratios: Record<string, { description: string; value: number }>;
}

/** Rendering cost of the product's registry alone, for K services in a given state (no Temporal, no HTTP). */
export async function measureExposition(sizes: number[], rounds: number): Promise<ExpositionCase[]> {
  const out: ExpositionCase[] = [];
  const all = fleet(Math.max(...sizes), ['fleet-1', 'fleet-2', 'fleet-3', 'fleet-4']);
  for (const k of sizes) {
    const cfg = fleetConfig({ services: all.slice(0, k) });
    const metrics = createMetrics();
    metrics.initServices(cfg);
    const states = cfg.services.map((svc, i) => ({
      host: svc.host,
      service: svc.name,
      status: (i % 10 === 0 ? 'HEALING' : 'OK') as 'HEALING' | 'OK',
      phase: i % 10 === 0 ? 'validating' : 'idle',
      consecutiveFailures: 0,
      restartsLastHour: 0,
    }));
    metrics.setStateSource(async () => states);
    let body = await metrics.registry.metrics(); // warm-up
    const ms: number[] = [];
    for (let r = 0; r < (k > 1000 ? Math.max(2, Math.ceil(rounds / 2)) : rounds); r++) {
      const t0 = performance.now();
      body = await metrics.registry.metrics();
      ms.push(performance.now() - t0);
    }
    out.push({ services: k, ms: spread(ms), bytes: Buffer.byteLength(body), lines: body.split('\n').length });
  }
  return out;
}

async function countValidating(client: Client): Promise<number> {
  const r = await client.workflow.count(
    `WorkflowType = '${WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND SelfhealPhase = 'validating'`,
  );
  return r.count;
}

async function sampleStates(client: Client, services: readonly FleetService[], size: number, seed: number) {
  const rand = prng(seed);
  const ms: number[] = [];
  let validating = 0;
  for (let i = 0; i < size; i++) {
    const s = services[Math.floor(rand() * services.length)];
    const t0 = performance.now();
    const st = await client.workflow.getHandle(workflowIdFor(s.host, s.name)).query(stateQuery);
    ms.push(performance.now() - t0);
    if (st.phase === 'validating') validating++;
  }
  return { size, validating, queryMs: spread(ms) };
}

export async function runEntitiesBench(
  log: (l: string) => void,
  opts: { steps: number[]; fanOutRounds: number; directRounds: number },
): Promise<EntitiesResults> {
  const max = Math.max(...opts.steps);
  const hosts = ['fleet-1', 'fleet-2', 'fleet-3', 'fleet-4'];
  const services = fleet(max, hosts);
  const t = await startDevServer(max);
  log(`  dev server ready in ${t.startSeconds.toFixed(1)} s (history cache sized for ${max} services)`);
  const policyNote = 'validationWindow 30m: every workflow opens an incident and waits in `validating` (a timer)';
  const config: Config = fleetConfig({
    services,
    address: t.address,
    dataDir: tempDir(),
    policy: 'validationWindow: 30m',
  });
  const baseline = { selfheal: await processMemory(), temporalRssMiB: treeRssMiB(t.server.pid) };
  const workers = await startBenchWorkers(t, config, hosts);
  await sleep(2_000);
  const workersIdle = { selfheal: await processMemory(), temporalRssMiB: treeRssMiB(t.server.pid) };
  log(
    `  workers idle: RSS ${workersIdle.selfheal.rssMiB.toFixed(0)} MiB, dev server ${workersIdle.temporalRssMiB?.toFixed(0)} MiB, maxCachedWorkflows ${workers.maxCachedWorkflows}`,
  );
  const loadgen = LoadGenerator.start();
  const closers: (() => Promise<void>)[] = [];
  try {
    const steps: ScaleStep[] = [];
    let done = 0;
    for (const target of opts.steps) {
      const batch = services.slice(done, target);
      const rand = prng(target);
      const plan = planAlerts(
        config,
        batch.map((s) => alert(rand, { service: s.name, host: s.host })),
      );
      const tc0 = cpuSeconds(t.server.pid) ?? 0;
      const sc0 = threadCpu();
      const t0 = performance.now();
      await deliverPlan(t.client, config, plan.signals);
      const acceptSeconds = (performance.now() - t0) / 1000;
      let allValidatingSeconds: number | null = null;
      const deadline = performance.now() + 120_000;
      let last = 0;
      while (performance.now() < deadline) {
        last = await countValidating(t.client);
        if (last >= target) {
          allValidatingSeconds = (performance.now() - t0) / 1000;
          break;
        }
        await sleep(200);
      }
      const cpu = { temporal: (cpuSeconds(t.server.pid) ?? 0) - tc0, selfheal: cpuDelta(sc0, threadCpu()) };
      if (allValidatingSeconds == null) log(`  step ${target}: only ${last} validating after 120 s`);
      const sample = await sampleStates(t.client, services.slice(0, target), 20, target);
      await sleep(1_000);
      const step: ScaleStep = {
        total: target,
        started: batch.length,
        acceptSeconds,
        acceptPerSec: batch.length / acceptSeconds,
        allValidatingSeconds,
        sample,
        selfheal: await processMemory(),
        temporalRssMiB: treeRssMiB(t.server.pid),
        cpu,
      };
      steps.push(step);
      done = target;
      log(
        `  ${target} workflows: +${batch.length} accepted in ${acceptSeconds.toFixed(2)} s, all validating after ${allValidatingSeconds?.toFixed(2) ?? '—'} s, RSS ${step.selfheal.rssMiB.toFixed(0)} MiB, dev server ${step.temporalRssMiB?.toFixed(0)} MiB`,
      );
    }

    const last = steps[steps.length - 1];
    const prev = steps.length > 1 ? steps[steps.length - 2] : null;
    const kib = (mibDelta: number, n: number) => (mibDelta * 1024) / n;
    const perWorkflow = {
      selfhealRssKiB: kib(last.selfheal.rssMiB - workersIdle.selfheal.rssMiB, last.total),
      selfhealHeapKiB: kib(last.selfheal.heapUsedMiB - workersIdle.selfheal.heapUsedMiB, last.total),
      temporalRssKiB:
        last.temporalRssMiB != null && workersIdle.temporalRssMiB != null
          ? kib(last.temporalRssMiB - workersIdle.temporalRssMiB, last.total)
          : null,
      marginalSelfhealRssKiB: prev
        ? kib(last.selfheal.rssMiB - prev.selfheal.rssMiB, last.total - prev.total)
        : kib(last.selfheal.rssMiB - workersIdle.selfheal.rssMiB, last.total),
      marginalTemporalRssKiB:
        prev && last.temporalRssMiB != null && prev.temporalRssMiB != null
          ? kib(last.temporalRssMiB - prev.temporalRssMiB, last.total - prev.total)
          : null,
    };

    // Fan-out: GET /metrics on API instances whose config guards the first K services (all running).
    const fanOut: FanOutCase[] = [];
    const sizes = [50, QUERY_ALL_LIMIT, max].filter((k, i, a) => k <= max && a.indexOf(k) === i);
    const actionsFor = new Map<number, ServiceActions>();
    const apps: {
      k: number;
      url: string;
      path: 'query' | 'visibility';
      ms: number[];
      series: number;
      healing: number;
      lastDone: number;
    }[] = [];
    for (const k of sizes) {
      const cfg =
        k === max ? config : fleetConfig({ services: services.slice(0, k), address: t.address, dataDir: tempDir() });
      const actions = new ServiceActions(t.client, cfg, 30_000);
      actionsFor.set(k, actions);
      const metrics = createMetrics();
      metrics.initServices(cfg);
      metrics.setStateSource(workflowStateSource(actions, cfg));
      const app = await buildApp({
        config: cfg,
        client: t.client,
        metrics,
        actions,
        audit: new AuditLog(cfg.audit.file),
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      closers.push(() => app.close());
      const addr = app.server.address();
      const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/metrics`;
      const path = cfg.services.length <= QUERY_ALL_LIMIT || !cfg.temporal.searchAttributes ? 'query' : 'visibility';
      apps.push({ k, url, path, ms: [], series: 0, healing: 0, lastDone: 0 });
    }
    // Scrapes interleaved over the API instances, round by round; round 0 is a warm-up.
    for (let r = 0; r <= opts.fanOutRounds; r++) {
      for (const a of apps) {
        // The gauges share one state read for 1 s after it finishes: wait that out so every scrape reads anew.
        const wait = a.lastDone + 1_100 - performance.now();
        if (wait > 0) await sleep(wait);
        const res = await loadgen.run({
          url: a.url,
          method: 'GET',
          headers: {},
          bodies: [],
          requests: 1,
          concurrency: 1,
          maxMs: 60_000,
        });
        a.lastDone = performance.now();
        if (r === 0) continue;
        a.ms.push(res.latenciesMs[0]);
        const lines = (res.sampleBody ?? '').split('\n').filter((l) => l.startsWith('selfhealing_service_status{'));
        a.series = lines.length;
        a.healing = lines.filter((l) => l.endsWith(' 1')).length;
      }
    }
    for (const a of apps) {
      fanOut.push({
        services: a.k,
        path: a.path,
        via: 'GET /metrics',
        ms: spread(a.ms),
        series: a.series,
        healing: a.healing,
      });
      log(`  GET /metrics with ${a.k} services (${a.path} path): ${spread(a.ms).median.toFixed(0)} ms`);
    }
    // The two state reads directly, at every size, interleaved round by round (the machine drifts).
    const paths = ['query', 'visibility'] as const;
    const samples = new Map<
      string,
      { ms: number[]; n: number; healing: number; cpuTemporal: number[]; cpuSelfheal: number[] }
    >();
    for (const k of sizes) {
      for (const path of paths) {
        const actions = actionsFor.get(k)!;
        await (path === 'query' ? actions.list() : actions.listFromVisibility()); // warm-up
        samples.set(`${k}/${path}`, { ms: [], n: 0, healing: 0, cpuTemporal: [], cpuSelfheal: [] });
      }
    }
    for (let r = 0; r < opts.directRounds; r++) {
      for (const k of sizes) {
        for (const path of paths) {
          const actions = actionsFor.get(k)!;
          const rec = samples.get(`${k}/${path}`)!;
          const tc0 = cpuSeconds(t.server.pid) ?? 0;
          const sc0 = threadCpu();
          const t0 = performance.now();
          const list = path === 'query' ? await actions.list() : await actions.listFromVisibility();
          rec.ms.push(performance.now() - t0);
          rec.cpuTemporal.push((cpuSeconds(t.server.pid) ?? 0) - tc0);
          rec.cpuSelfheal.push(cpuDelta(sc0, threadCpu()).total);
          rec.n = list.length;
          rec.healing = list.filter((x) => x.status === 'HEALING').length;
        }
      }
    }
    for (const k of sizes) {
      for (const path of paths) {
        const rec = samples.get(`${k}/${path}`)!;
        fanOut.push({
          services: k,
          path,
          via: path === 'query' ? 'ServiceActions.list()' : 'ServiceActions.listFromVisibility()',
          ms: spread(rec.ms),
          cpu: { temporal: spread(rec.cpuTemporal).median, selfheal: spread(rec.cpuSelfheal).median },
          series: rec.n,
          healing: rec.healing,
        });
        log(`  ${path} path with ${k} services: ${spread(rec.ms).median.toFixed(0)} ms`);
      }
    }
    const exposition = await measureExposition([50, QUERY_ALL_LIMIT, max, 5 * max], opts.fanOutRounds);
    for (const e of exposition)
      log(`  exposition only, ${e.services} services: ${e.ms.median.toFixed(0)} ms, ${e.lines} lines`);
    const direct = (k: number, path: 'query' | 'visibility') =>
      fanOut.find((f) => f.services === k && f.path === path && f.via !== 'GET /metrics')?.ms.median ?? NaN;
    const metricsAt = (k: number) => fanOut.find((f) => f.services === k && f.via === 'GET /metrics')?.ms.median ?? NaN;
    const ratios: EntitiesResults['ratios'] = {
      queryVsVisibilityAtMax: {
        description: `query path ÷ visibility path, ${max} services (medians)`,
        value: direct(max, 'query') / direct(max, 'visibility'),
      },
      queryVsVisibilityAt200: {
        description: `query path ÷ visibility path, ${QUERY_ALL_LIMIT} services (medians)`,
        value: direct(QUERY_ALL_LIMIT, 'query') / direct(QUERY_ALL_LIMIT, 'visibility'),
      },
      metrics200VsMetrics50: {
        description: `GET /metrics ${QUERY_ALL_LIMIT} services ÷ 50 services (both query path)`,
        value: metricsAt(QUERY_ALL_LIMIT) / metricsAt(50),
      },
      metricsMaxVsMetrics200: {
        description: `GET /metrics ${max} services (visibility) ÷ ${QUERY_ALL_LIMIT} services (query)`,
        value: metricsAt(max) / metricsAt(QUERY_ALL_LIMIT),
      },
      exposition1000VsVisibilityRead: {
        description: `rendering the exposition alone ÷ the visibility state read, ${max} services (medians)`,
        value: (exposition.find((e) => e.services === max)?.ms.median ?? NaN) / direct(max, 'visibility'),
      },
      queryPerWorkflowMsAtMax: {
        description: `query path: ms per workflow at ${max} services`,
        value: direct(max, 'query') / max,
      },
    };

    return {
      hosts,
      policyNote,
      maxCachedWorkflows: workers.maxCachedWorkflows,
      devServerStartSeconds: t.startSeconds,
      baseline,
      workersIdle,
      steps,
      perWorkflow,
      fanOut,
      exposition,
      ratios,
    };
  } finally {
    for (const c of closers) await c().catch(() => undefined);
    await loadgen.stop();
    await workers.shutdown();
    await t.close();
  }
}
