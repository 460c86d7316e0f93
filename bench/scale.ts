// Scale (issue 12, targets 1, 3 and 4), on the product's embedded dev server, loopback only:
//
//   storm     10,000 distinct services alerted at once through the real webhook (requests of 100
//             alerts, a window of them in flight, a request answered other than 200 sent again as
//             Alertmanager does); the control worker is a real `selfheal worker --control` process,
//             so its RSS is its own. Time until every request was accepted and until the visibility
//             index counts every workflow in `validating`; worker and dev-server RSS when 1k / 5k /
//             10k are validating; where the CPU went (dev server, worker threads, API, load
//             generator) and the SDK's own worker metrics (task slots, sticky cache, replays); the
//             latency of a signal to an evicted vs a cached workflow; the longest history. Run once
//             per worker cache size (`worker.maxCachedWorkflows`: the product default, and the SDK's
//             own default derived from the heap limit).
//   overhead  Remediation overhead beyond the configured windows, per incident: (systemctl restart
//             call − alert sent − validation window) and (incident closed − unit active − stable
//             period), p50/p95/p99 at 1 (five times in a row), 100 and 1,000 concurrent incidents
//             (FakeManager; workers in this process), with the fleet limits lifted and, at 100, with
//             the default restart concurrency.
//   systemd   N real units on a private systemd user manager stopped at once, alerted through the
//             webhook, restarted by the host workers (real `systemctl --user`): all restarted and
//             verified, and the time to the last verification.
//
// SCALE_PARTS=storm,overhead,systemd picks parts (default all); SCALE_STORM (10000), SCALE_CACHES
// (250,sdk: the product default and the SDK's), SCALE_OVERHEAD (1,100,1000) and SCALE_SYSTEMD (100,300) size them;
// SCALE_TEMPORAL_TIMEOUT_MS shortens the API's api.temporalTimeout in the storm (to provoke 503s);
// SCALE_WORKER_NODE_OPTIONS sets the control worker's NODE_OPTIONS (e.g. a V8 heap cap).
// No timed assertions: every figure is reported; bounds only stop a hung run.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import type { FastifyInstance } from 'fastify';
import type { Client } from '@temporalio/client';
import { AuditLog, type AuditRecord } from '../src/activities/audit';
import { defaultManagers, type ManagerFactory, type ServiceManager } from '../src/activities/service-manager';
import { buildApp } from '../src/api/app';
import { breakerStatus } from '../src/client/breaker';
import { parseConfig, type Config } from '../src/config/config';
import { DEFAULT_MAX_CACHED_WORKFLOWS } from '../src/config/schema';
import { createMetrics } from '../src/metrics/metrics';
import { createControlWorker, createFleetWorker, createHostWorker } from '../src/worker/workers';
import { WORKFLOW_TYPE, alertFiringSignal, stateQuery, workflowIdFor } from '../src/workflows/definitions';
import { FakeManager } from '../test/helpers/fake-manager';
import { freePort } from '../test/helpers/ports';
import { UserSystemd } from '../test/helpers/systemd';
import { workflowBundle } from '../test/helpers/temporal';
import { TOKEN, distinctAlertsPayload, fleet, fleetConfigYaml, tempDir, type FleetService } from './lib/fixtures';
import { LoadGenerator } from './lib/loadgen';
import { percentiles, sleep, spread, type Percentiles, type Spread } from './lib/stats';
import { cpuSeconds, threadCpu, treeRssMiB, vmRssMiB, type ThreadCpu } from './lib/system';
import { startDevServer, type BenchTemporal } from './lib/temporal';

const ROOT = join(__dirname, '..');
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

// ---------------------------------------------------------------- shared pieces

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  if (!addr || typeof addr !== 'object') throw new Error('the API did not bind');
  return `http://127.0.0.1:${addr.port}`;
}

function configFrom(yaml: string, dir: string): Config {
  return parseConfig(yaml, { source: 'bench-scale.yaml', cwd: dir, env: {} });
}

/** The SDK's own default cache size for a process with this heap limit (worker-options.js, reuseV8Context). */
export function sdkDefaultCache(): number {
  const heapMiB = getHeapStatistics().heap_size_limit / 2 ** 20;
  return Math.max(Math.floor((Math.max(heapMiB - 200, 0) * 600) / 1024), 10);
}

interface Accepted {
  /** Request send time (ms since epoch) per service: when the alert reached the API. */
  sentAt: Map<string, number>;
  firstSent: number;
  lastAccepted: number;
  requests: number;
  refused: Record<string, number>;
  resent: number;
}

/**
 * Alerts for `services` through the webhook: requests of `perRequest` alerts, `inFlight` at a time;
 * a request answered other than 200 goes back to the end of the queue (Alertmanager resends).
 */
async function alertThroughWebhook(
  loadgen: LoadGenerator,
  base: string,
  services: readonly FleetService[],
  opts: { perRequest: number; inFlight: number; seed: number; maxMs: number },
): Promise<Accepted> {
  const queue: { body: string; group: FleetService[] }[] = [];
  for (let i = 0; i < services.length; i += opts.perRequest) {
    const group = services.slice(i, i + opts.perRequest);
    queue.push({ body: JSON.stringify(distinctAlertsPayload(group, opts.seed + i)), group });
  }
  const requests = queue.length;
  const sentAt = new Map<string, number>();
  const refused: Record<string, number> = {};
  let resent = 0;
  const firstSent = Date.now();
  let lastAccepted = firstSent;
  const deadline = performance.now() + opts.maxMs;
  await Promise.all(
    Array.from({ length: Math.min(opts.inFlight, queue.length) }, async () => {
      for (;;) {
        const item = queue.shift();
        if (!item) return;
        if (performance.now() > deadline) throw new Error(`webhook: ${queue.length + 1} requests not accepted in time`);
        const t = Date.now();
        const r = await loadgen.run({
          url: `${base}/selfheal/trigger`,
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}` },
          bodies: [item.body],
          requests: 1,
          concurrency: 1,
          maxMs: 120_000,
          expectStatus: 200,
        });
        if (r.statuses['200']) {
          for (const s of item.group) if (!sentAt.has(s.name)) sentAt.set(s.name, t);
          lastAccepted = Date.now();
        } else {
          for (const [code, n] of Object.entries(r.statuses)) refused[code] = (refused[code] ?? 0) + n;
          if (r.errors) refused.transport = (refused.transport ?? 0) + r.errors;
          resent++;
          queue.push(item);
          await sleep(500);
        }
      }
    }),
  );
  return { sentAt, firstSent, lastAccepted, requests, refused, resent };
}

async function countValidating(client: Client): Promise<number> {
  const r = await client.workflow.count(
    `WorkflowType = '${WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND SelfhealPhase = 'validating'`,
  );
  return r.count;
}

/** Sums of the SDK's worker metrics by name (labels folded), from its Prometheus endpoint. */
async function sdkMetrics(url: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  try {
    const text = await (await fetch(url)).text();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const m = /^([a-z_]+)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN)$/.exec(line);
      if (!m || m[1].endsWith('_bucket')) continue;
      if (!/sticky_cache|workflow_task|task_slots|num_pollers|activity_execution|request/.test(m[1])) continue;
      // Activity latencies by activity type (which local activity the workflow tasks wait for).
      const type = /activity_execution/.test(m[1]) ? /activity_type="([^"]+)"/.exec(m[2] ?? '')?.[1] : undefined;
      const key = type ? `${m[1]}{${type}}` : m[1];
      const v = Number(m[3]);
      if (Number.isFinite(v)) out[key] = (out[key] ?? 0) + v;
    }
  } catch (err) {
    out.scrapeFailed = 1;
    void err;
  }
  return out;
}

function splitCpu(a: ThreadCpu, b: ThreadCpu) {
  const d = (k: keyof ThreadCpu) => Math.max(0, b[k] - a[k]);
  return { main: d('main'), workflow: d('workflow'), core: d('core'), other: d('other'), total: d('total') };
}

// ---------------------------------------------------------------- storm (targets 1 and 4)

export interface StormRun {
  cache: number;
  cacheLabel: string;
  services: number;
  perRequest: number;
  inFlight: number;
  loadavgBefore: string;
  loadavgAfter: string;
  idle: { workerRssMiB: number | null; devServerRssMiB: number | null };
  acceptedSeconds: number;
  requests: number;
  refused: Record<string, number>;
  resent: number;
  /** First request sent → the visibility index counts every workflow in `validating`. */
  allValidatingSeconds: number | null;
  /** When 1k / 5k / 10k were validating: seconds and the RSS of the worker and the dev server. */
  milestones: { validating: number; seconds: number; workerRssMiB: number | null; devServerRssMiB: number | null }[];
  peak: { workerRssMiB: number; devServerRssMiB: number };
  settled: { workerRssMiB: number | null; devServerRssMiB: number | null };
  /** CPU seconds from the first request until all were validating. */
  cpu: {
    devServer: number;
    worker: ReturnType<typeof splitCpu>;
    api: ReturnType<typeof splitCpu>;
    loadgen: number;
    wallSeconds: number;
  };
  sdk: Record<string, number>;
  /** Duplicate alert + state query on one workflow: evicted first (replays its history), then cached. */
  signal: { evictedMs: Spread; cachedMs: Spread; samples: number };
  history: { entityMax: number; entitySampled: number; coordinator: number | null; coordinatorRun: number | null };
}

async function startControlProcess(
  dir: string,
  yaml: string,
): Promise<{ child: ChildProcess; stop(): Promise<void>; logFile: string }> {
  const cfgFile = join(dir, 'selfheal.yaml');
  writeFileSync(cfgFile, yaml);
  const logFile = join(dir, 'control.log');
  const out = createWriteStream(logFile);
  const env: NodeJS.ProcessEnv = { ...process.env, SELFHEAL_LOG_LEVEL: 'WARN' };
  for (const k of ['NODE_OPTIONS', 'SELFHEAL_CONFIG', 'SELFHEAL_HOST', 'SELFHEAL_FROM_SOURCE']) delete env[k];
  // SCALE_WORKER_NODE_OPTIONS: Node options of the control worker only (e.g. a V8 heap limit).
  if (process.env.SCALE_WORKER_NODE_OPTIONS) env.NODE_OPTIONS = process.env.SCALE_WORKER_NODE_OPTIONS;
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'selfheal.js'), 'worker', '--control', '-c', cfgFile], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let seen = '';
  const ready = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`control worker not running after 90 s: ${seen.slice(-500)}`)), 90_000);
    const on = (b: Buffer) => {
      out.write(b);
      seen += b.toString();
      if (seen.includes('selfheal is running')) {
        clearTimeout(t);
        resolve();
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (code) => reject(new Error(`control worker exited (${code}): ${seen.slice(-500)}`)));
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    }
    out.end();
  };
  try {
    await ready;
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, stop, logFile };
}

async function stormRun(
  log: (l: string) => void,
  opts: { services: number; cache: number; cacheLabel: string; perRequest: number; inFlight: number },
): Promise<StormRun> {
  const hosts = ['node-1', 'node-2', 'node-3', 'node-4'];
  const services = fleet(opts.services, hosts);
  const loadavgBefore = loadavg();
  const t = await startDevServer(opts.services);
  const dir = tempDir('selfheal-bench-scale-');
  const sdkPort = await freePort();
  const yaml = fleetConfigYaml({
    services,
    address: t.address,
    dataDir: dir,
    policy: 'validationWindow: 30m',
    extra: [
      'worker:',
      `  temporalMetrics: "127.0.0.1:${sdkPort}"`,
      '  metrics: ""',
      `  maxCachedWorkflows: ${opts.cache}`,
    ],
  });
  const config = configFrom(yaml, dir);
  // SCALE_TEMPORAL_TIMEOUT_MS: the API's api.temporalTimeout (10 s by default) shorter, to provoke
  // the 503s a loaded machine gives (a request that outlives it after part of it got through).
  if (process.env.SCALE_TEMPORAL_TIMEOUT_MS)
    config.api.temporalTimeoutMs = Number(process.env.SCALE_TEMPORAL_TIMEOUT_MS);
  const closers: (() => Promise<unknown>)[] = [];
  try {
    const control = await startControlProcess(dir, yaml);
    closers.push(control.stop);
    const wpid = control.child.pid!;
    const metrics = createMetrics();
    metrics.initServices(config);
    const app = await buildApp({ config, client: t.client, metrics, audit: new AuditLog(config.audit.file) });
    const base = await listen(app);
    closers.push(() => app.close());
    const loadgen = LoadGenerator.start();
    closers.push(() => loadgen.stop());
    await sleep(2_000);
    const idle = { workerRssMiB: vmRssMiB(wpid), devServerRssMiB: treeRssMiB(t.server.pid) };
    log(
      `  cache ${opts.cacheLabel}: control worker idle ${idle.workerRssMiB?.toFixed(0)} MiB, dev server ${idle.devServerRssMiB?.toFixed(0)} MiB`,
    );

    const cpu0 = {
      dev: cpuSeconds(t.server.pid) ?? 0,
      worker: threadCpu(wpid),
      api: threadCpu(),
      loadgen: cpuSeconds(loadgen.pid) ?? 0,
    };
    const t0 = performance.now();
    const milestones: StormRun['milestones'] = [];
    const marks = [1000, 5000, 10000, opts.services].filter((m, i, a) => m <= opts.services && a.indexOf(m) === i);
    const peak = { workerRssMiB: 0, devServerRssMiB: 0 };
    let done = false;
    let allValidatingSeconds: number | null = null;
    let cpu: StormRun['cpu'] | null = null;
    const sampler = (async () => {
      const deadline = t0 + 900_000;
      let lastLog = t0;
      while (!done && performance.now() < deadline) {
        const n = await countValidating(t.client).catch(() => -1);
        if (performance.now() - lastLog > 30_000) {
          lastLog = performance.now();
          log(`    ${n} validating at ${((lastLog - t0) / 1000).toFixed(0)} s (load ${loadavg()})`);
        }
        const w = vmRssMiB(wpid);
        const d = treeRssMiB(t.server.pid);
        peak.workerRssMiB = Math.max(peak.workerRssMiB, w ?? 0);
        peak.devServerRssMiB = Math.max(peak.devServerRssMiB, d ?? 0);
        const secs = (performance.now() - t0) / 1000;
        while (marks.length && n >= marks[0]) {
          milestones.push({ validating: marks.shift()!, seconds: secs, workerRssMiB: w, devServerRssMiB: d });
          log(`    ${milestones[milestones.length - 1].validating} validating at ${secs.toFixed(1)} s`);
        }
        if (n >= opts.services) {
          allValidatingSeconds = secs;
          cpu = {
            devServer: (cpuSeconds(t.server.pid) ?? 0) - cpu0.dev,
            worker: splitCpu(cpu0.worker, threadCpu(wpid)),
            api: splitCpu(cpu0.api, threadCpu()),
            loadgen: (cpuSeconds(loadgen.pid) ?? 0) - cpu0.loadgen,
            wallSeconds: secs,
          };
          return;
        }
        await sleep(1_000);
      }
    })();
    const accepted = await alertThroughWebhook(loadgen, base, services, {
      perRequest: opts.perRequest,
      inFlight: opts.inFlight,
      seed: 7_000,
      maxMs: 900_000,
    });
    const acceptedSeconds = (accepted.lastAccepted - accepted.firstSent) / 1000;
    log(
      `  all ${accepted.requests} requests accepted in ${acceptedSeconds.toFixed(1)} s (${accepted.resent} resent: ${JSON.stringify(accepted.refused)})`,
    );
    await sampler;
    done = true;
    const wallNow = (performance.now() - t0) / 1000;
    cpu ??= {
      devServer: (cpuSeconds(t.server.pid) ?? 0) - cpu0.dev,
      worker: splitCpu(cpu0.worker, threadCpu(wpid)),
      api: splitCpu(cpu0.api, threadCpu()),
      loadgen: (cpuSeconds(loadgen.pid) ?? 0) - cpu0.loadgen,
      wallSeconds: wallNow,
    };
    log(`  all validating after ${allValidatingSeconds ?? '—'} s`);
    const sdk = await sdkMetrics(`http://127.0.0.1:${sdkPort}/metrics`);
    await sleep(5_000);
    const settled = { workerRssMiB: vmRssMiB(wpid), devServerRssMiB: treeRssMiB(t.server.pid) };

    // Signal latency, evicted vs cached: services alerted first have not run a task since (the
    // cache keeps the most recent); the second signal to the same workflow finds it cached.
    const evictedMs: number[] = [];
    const cachedMs: number[] = [];
    const samples = 20;
    const early = services.slice(0, Math.floor(opts.services / 4));
    for (let i = 0; i < samples; i++) {
      const s = early[Math.floor((i * early.length) / samples)];
      const h = t.client.workflow.getHandle(workflowIdFor(s.host, s.name));
      for (const into of [evictedMs, cachedMs]) {
        const s0 = performance.now();
        await h.signal(alertFiringSignal, { alertnames: ['ServiceStalled'], summary: 'again' });
        await h.query(stateQuery);
        into.push(performance.now() - s0);
      }
    }
    log(
      `  signal+query: evicted ${spread(evictedMs).median.toFixed(0)} ms, cached ${spread(cachedMs).median.toFixed(0)} ms`,
    );

    let entityMax = 0;
    let entitySampled = 0;
    for (let i = 0; i < opts.services; i += Math.max(1, Math.floor(opts.services / 50))) {
      const s = services[i];
      const d = await t.client.workflow.getHandle(workflowIdFor(s.host, s.name)).describe();
      entityMax = Math.max(entityMax, d.historyLength);
      entitySampled++;
    }
    for (const s of early.slice(0, samples)) {
      const d = await t.client.workflow.getHandle(workflowIdFor(s.host, s.name)).describe();
      entityMax = Math.max(entityMax, d.historyLength);
    }
    const v = await breakerStatus(t.client, 30_000).catch(() => null);
    return {
      cache: opts.cache,
      cacheLabel: opts.cacheLabel,
      services: opts.services,
      perRequest: opts.perRequest,
      inFlight: opts.inFlight,
      loadavgBefore,
      loadavgAfter: loadavg(),
      idle,
      acceptedSeconds,
      requests: accepted.requests,
      refused: accepted.refused,
      resent: accepted.resent,
      allValidatingSeconds,
      milestones,
      peak,
      settled,
      cpu,
      sdk,
      signal: { evictedMs: spread(evictedMs), cachedMs: spread(cachedMs), samples },
      history: {
        entityMax,
        entitySampled,
        coordinator: v?.historyLength ?? null,
        coordinatorRun: v?.run ?? null,
      },
    };
  } finally {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- overhead (target 3) and systemd (target 4)

interface Timing {
  restartCalledAt: number;
  activeAt: number;
}

/** A manager that notes when `restart` was called and when it returned (the unit is active then). */
function timedManagers(inner: ManagerFactory, timings: Map<string, Timing>): ManagerFactory {
  const wrap = new Map<string, ServiceManager>();
  return (kind) => {
    let m = wrap.get(kind);
    if (!m) {
      const base = inner(kind);
      m = {
        kind: base.kind,
        status: (unit) => base.status(unit),
        async restart(unit) {
          const calledAt = Date.now();
          await base.restart(unit);
          if (!timings.has(unit)) timings.set(unit, { restartCalledAt: calledAt, activeAt: Date.now() });
        },
      };
      wrap.set(kind, m);
    }
    return m;
  };
}

async function startInProcess(
  t: BenchTemporal,
  config: Config,
  hosts: readonly string[],
  managers: ManagerFactory,
): Promise<() => Promise<void>> {
  const bundle = await workflowBundle();
  const audit = new AuditLog(config.audit.file);
  const workers = [
    await createControlWorker({ config, connection: t.native, audit, workflows: { workflowBundle: bundle } }),
    await createFleetWorker({ config, connection: t.native, audit, workflows: { workflowBundle: bundle } }),
    // The product's default poll interval (1 s) while verifying.
    ...(await Promise.all(hosts.map((host) => createHostWorker({ config, connection: t.native, host, managers })))),
  ];
  const runs = workers.map((w) => w.run());
  return async () => {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.allSettled(runs);
  };
}

function readAudit(file: string): AuditRecord[] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditRecord);
  } catch {
    return [];
  }
}

export interface OverheadLevel {
  label: string;
  incidents: number;
  limits: string;
  /** Incidents closed as verified within the bound. */
  verified: number;
  restartOverheadMs: Percentiles;
  closeOverheadMs: Percentiles;
  /** Where the overheads go, from the audit log's times (p50 and p99, ms). */
  parts: Record<string, Percentiles>;
  /** Last incident closed − first alert sent. */
  lastClosedSeconds: number;
  loadavg: string;
}

export interface OverheadResults {
  validationWindowMs: number;
  verifyStableMs: number;
  hosts: number;
  levels: OverheadLevel[];
}

/** One level: `services` alerted together through the webhook; per-incident overheads from the audit log and the manager. */
async function overheadLevel(
  log: (l: string) => void,
  ctx: {
    loadgen: LoadGenerator;
    base: string;
    auditFile: string;
    timings: Map<string, Timing>;
    stop: (unit: string) => Promise<void> | void;
    windowMs: number;
    stableMs: number;
    label: string;
    limits: string;
    boundMs: number;
  },
  services: readonly FleetService[],
  seed: number,
): Promise<OverheadLevel> {
  for (const s of services) await ctx.stop(s.name);
  const accepted = await alertThroughWebhook(ctx.loadgen, ctx.base, services, {
    perRequest: 100,
    inFlight: 10,
    seed,
    maxMs: 300_000,
  });
  const want = new Set(services.map((s) => s.name));
  const deadline = performance.now() + ctx.boundMs;
  let closed = new Map<string, AuditRecord>();
  while (performance.now() < deadline) {
    closed = new Map(
      readAudit(ctx.auditFile)
        .filter((r) => r.event === 'incident-closed' && want.has(r.service))
        .map((r) => [r.service, r]),
    );
    if (closed.size >= want.size) break;
    await sleep(500);
  }
  const restartOver: number[] = [];
  const closeOver: number[] = [];
  const audit = readAudit(ctx.auditFile).filter((r) => want.has(r.service));
  const at = (svc: string, pred: (r: AuditRecord) => boolean) => {
    const r = audit.find((x) => x.service === svc && pred(x));
    return r ? Date.parse(r.time) : NaN;
  };
  const parts: Record<string, number[]> = {
    'alert → incident opened': [],
    'window end → re-check confirmed': [],
    're-check → restart decided (silences, coordinator)': [],
    'restart decided → systemctl restart called': [],
    'active + stable → attempt finished': [],
    'attempt finished → closed': [],
  };
  const push = (k: string, v: number) => {
    if (Number.isFinite(v)) parts[k].push(v);
  };
  let verified = 0;
  let last = 0;
  for (const s of services) {
    const c = closed.get(s.name);
    const tm = ctx.timings.get(s.name);
    const sent = accepted.sentAt.get(s.name);
    if (!c || !tm || sent === undefined) continue;
    if (c.decision === 'verified') verified++;
    const closedAt = Date.parse(c.time);
    last = Math.max(last, closedAt);
    restartOver.push(tm.restartCalledAt - sent - ctx.windowMs);
    closeOver.push(closedAt - (tm.activeAt + ctx.stableMs));
    const opened = at(s.name, (r) => r.event === 'incident-opened');
    const recheck = at(s.name, (r) => r.event === 'recheck');
    const restart = at(s.name, (r) => r.event === 'restart');
    const finished = at(s.name, (r) => r.event === 'attempt-finished');
    push('alert → incident opened', opened - sent);
    push('window end → re-check confirmed', recheck - opened - ctx.windowMs);
    push('re-check → restart decided (silences, coordinator)', restart - recheck);
    push('restart decided → systemctl restart called', tm.restartCalledAt - restart);
    push('active + stable → attempt finished', finished - (tm.activeAt + ctx.stableMs));
    push('attempt finished → closed', closedAt - finished);
  }
  const level: OverheadLevel = {
    label: ctx.label,
    incidents: services.length,
    limits: ctx.limits,
    verified,
    restartOverheadMs: percentiles(restartOver),
    closeOverheadMs: percentiles(closeOver),
    parts: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, percentiles(v)])),
    lastClosedSeconds: (last - accepted.firstSent) / 1000,
    loadavg: loadavg(),
  };
  log(
    `  ${ctx.label}: ${verified}/${services.length} verified; restart overhead p50/p99 ${level.restartOverheadMs.p50.toFixed(0)}/${level.restartOverheadMs.p99.toFixed(0)} ms, close overhead ${level.closeOverheadMs.p50.toFixed(0)}/${level.closeOverheadMs.p99.toFixed(0)} ms`,
  );
  return level;
}

const LIFTED = (n: number) =>
  `fleet: { breaker: { enabled: false }, maxRestartsInFlight: ${n}, maxRestartsInFlightPerHost: ${n} }`;

async function runOverhead(log: (l: string) => void, sizes: number[]): Promise<OverheadResults> {
  const hosts = Array.from({ length: 10 }, (_, i) => `h${String(i).padStart(2, '0')}`);
  const windowMs = 5_000;
  const stableMs = 2_000;
  const policy = 'validationWindow: 5s, verifyStableFor: 2s, verifyTimeout: 2m';
  const levels: OverheadLevel[] = [];
  // Phase 1: limits lifted (the engine's own overhead); phase 2: the default restart concurrency.
  const phases: { label: (n: number) => string; limits: string; extra: string[]; sizes: number[] }[] = [
    {
      label: (n) => (n === 1 ? '1 incident (5 in a row)' : `${n} concurrent`),
      limits: 'breaker off, maxRestartsInFlight and per host lifted to the incident count',
      extra: [LIFTED(Math.max(...sizes))],
      sizes,
    },
    {
      label: (n) => `${n} concurrent, default restart limits`,
      limits: 'breaker off; maxRestartsInFlight 10, per host 2 (the defaults)',
      extra: ['fleet: { breaker: { enabled: false } }'],
      sizes: sizes.filter((n) => n > 1 && n <= 100),
    },
  ];
  for (const phase of phases) {
    if (!phase.sizes.length) continue;
    const total = phase.sizes.reduce((a, n) => a + (n === 1 ? 5 : n), 0);
    const services = fleet(total + 7, hosts).slice(7); // numbered units only
    const t = await startDevServer(total);
    const dir = tempDir('selfheal-bench-overhead-');
    const yaml = fleetConfigYaml({ services, address: t.address, dataDir: dir, policy, extra: phase.extra });
    const config = configFrom(yaml, dir);
    const timings = new Map<string, Timing>();
    const fake = new FakeManager();
    const stopWorkers = await startInProcess(
      t,
      config,
      hosts,
      timedManagers(() => fake, timings),
    );
    const metrics = createMetrics();
    metrics.initServices(config);
    const app = await buildApp({ config, client: t.client, metrics, audit: new AuditLog(config.audit.file) });
    const loadgen = LoadGenerator.start();
    try {
      const base = await listen(app);
      const ctx = {
        loadgen,
        base,
        auditFile: config.audit.file,
        timings,
        stop: (u: string) => fake.stop(u),
        windowMs,
        stableMs,
        limits: phase.limits,
        boundMs: 420_000,
      };
      let next = 0;
      for (const n of phase.sizes) {
        if (n === 1) {
          const one: OverheadLevel[] = [];
          for (let k = 0; k < 5; k++) {
            one.push(
              await overheadLevel(
                log,
                { ...ctx, label: `1 incident, #${k + 1}` },
                services.slice(next, next + 1),
                100 + k,
              ),
            );
            next++;
          }
          // The five single incidents pooled into one row.
          levels.push(pooled(phase.label(1), phase.limits, one, one.length));
        } else {
          levels.push(await overheadLevel(log, { ...ctx, label: phase.label(n) }, services.slice(next, next + n), n));
          next += n;
        }
      }
    } finally {
      await loadgen.stop();
      await app.close();
      await stopWorkers();
      await t.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return { validationWindowMs: windowMs, verifyStableMs: stableMs, hosts: hosts.length, levels };

  function pooled(label: string, limits: string, rows: OverheadLevel[], n: number): OverheadLevel {
    // p50/p95/p99 of five single samples: report the spread of the five (p99 = max).
    const r = rows.map((x) => x.restartOverheadMs.p50);
    const c = rows.map((x) => x.closeOverheadMs.p50);
    return {
      label,
      incidents: n,
      limits,
      verified: rows.reduce((a, x) => a + x.verified, 0),
      restartOverheadMs: percentiles(r),
      closeOverheadMs: percentiles(c),
      parts: Object.fromEntries(
        Object.keys(rows[0].parts).map((k) => [k, percentiles(rows.map((x) => x.parts[k].p50))]),
      ),
      lastClosedSeconds: Math.max(...rows.map((x) => x.lastClosedSeconds)),
      loadavg: rows[rows.length - 1].loadavg,
    };
  }
}

export interface SystemdLevel extends OverheadLevel {
  /** Units stopped at once → the last incident closed (verified). */
  stopToLastVerifiedSeconds: number;
  stopSeconds: number;
  activeAtEnd: number;
  restartedOnce: number;
}

export interface SystemdResults {
  skipped?: string;
  hosts: number;
  limits: string;
  levels: SystemdLevel[];
}

async function runSystemd(log: (l: string) => void, sizes: number[]): Promise<SystemdResults> {
  const hosts = Array.from({ length: 10 }, (_, i) => `s${String(i).padStart(2, '0')}`);
  const total = sizes.reduce((a, n) => a + n, 0);
  const max = Math.max(...sizes);
  const limits = `breaker off, maxRestartsInFlight ${max}, per host ${max} (lifted); host worker: 8 activities at once (product constant)`;
  let systemd: UserSystemd;
  try {
    systemd = await UserSystemd.start();
  } catch (err) {
    return { skipped: `no private systemd user manager: ${(err as Error).message}`, hosts: 0, limits, levels: [] };
  }
  const services = fleet(total + 7, hosts).slice(7);
  const savedXdg = process.env.XDG_RUNTIME_DIR;
  const t = await startDevServer(total);
  const dir = tempDir('selfheal-bench-systemd-');
  const closers: (() => Promise<unknown>)[] = [];
  try {
    for (const s of services) {
      writeFileSync(
        join(systemd.unitDir, s.name),
        '[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=simple\nExecStart=/bin/sleep infinity\n',
      );
    }
    await systemd.systemctl('daemon-reload');
    const chunks = <T>(a: readonly T[], n: number) =>
      Array.from({ length: Math.ceil(a.length / n) }, (_, i) => a.slice(i * n, i * n + n));
    for (const c of chunks(services, 200)) await systemd.systemctl('start', '--', ...c.map((s) => s.name));
    log(`  ${services.length} units started on a private systemd user manager`);
    // The product's SystemdManager runs `systemctl --user` with this process's environment.
    process.env.XDG_RUNTIME_DIR = systemd.runtimeDir;
    const yaml = fleetConfigYaml({
      services,
      address: t.address,
      dataDir: dir,
      manager: 'systemd-user',
      policy: 'validationWindow: 5s, verifyStableFor: 2s, verifyTimeout: 2m',
      extra: [LIFTED(max)],
    });
    const config = configFrom(yaml, dir);
    const timings = new Map<string, Timing>();
    closers.push(await startInProcess(t, config, hosts, timedManagers(defaultManagers(), timings)));
    const metrics = createMetrics();
    metrics.initServices(config);
    const app = await buildApp({ config, client: t.client, metrics, audit: new AuditLog(config.audit.file) });
    closers.push(() => app.close());
    const base = await listen(app);
    const loadgen = LoadGenerator.start();
    closers.push(() => loadgen.stop());
    const levels: SystemdLevel[] = [];
    let next = 0;
    for (const n of sizes) {
      const group = services.slice(next, next + n);
      next += n;
      const s0 = Date.now();
      await Promise.all(chunks(group, 100).map((c) => systemd.systemctl('stop', '--', ...c.map((s) => s.name))));
      const stopSeconds = (Date.now() - s0) / 1000;
      const lvl = await overheadLevel(
        log,
        {
          loadgen,
          base,
          auditFile: config.audit.file,
          timings,
          stop: () => undefined,
          windowMs: 5_000,
          stableMs: 2_000,
          label: `${n} units stopped at once (real systemd)`,
          limits,
          boundMs: 600_000,
        },
        group,
        n * 7,
      );
      const closed = readAudit(config.audit.file).filter(
        (r) => r.event === 'incident-closed' && group.some((g) => g.name === r.service),
      );
      const lastClosed = Math.max(...closed.map((r) => Date.parse(r.time)));
      let active = 0;
      for (const c of chunks(group, 200)) {
        const out = await systemd.systemctl('show', '--property=ActiveState', '--', ...c.map((s) => s.name));
        active += out.split('\n').filter((l) => l === 'ActiveState=active').length;
      }
      const restartedOnce = group.filter((g) => timings.has(g.name)).length;
      levels.push({
        ...lvl,
        stopToLastVerifiedSeconds: (lastClosed - s0) / 1000,
        stopSeconds,
        activeAtEnd: active,
        restartedOnce,
      });
      log(
        `  ${n} units: stop→last verified ${((lastClosed - s0) / 1000).toFixed(1)} s, ${active} active at the end, ${restartedOnce} restarted`,
      );
    }
    return { hosts: hosts.length, limits, levels };
  } finally {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    await t.close();
    if (savedXdg === undefined) delete process.env.XDG_RUNTIME_DIR;
    else process.env.XDG_RUNTIME_DIR = savedXdg;
    await systemd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- entry

export interface ScaleResults {
  parts: string[];
  storm?: StormRun[];
  overhead?: OverheadResults;
  systemd?: SystemdResults;
}

const nums = (v: string | undefined, d: number[]) =>
  v
    ? v
        .split(',')
        .map((x) => Number(x.trim()))
        .filter((x) => x > 0)
    : d;

export async function runScaleBench(log: (l: string) => void): Promise<ScaleResults> {
  const parts = (process.env.SCALE_PARTS ?? 'storm,overhead,systemd').split(',').map((s) => s.trim());
  const out: ScaleResults = { parts };
  if (parts.includes('storm')) {
    const n = nums(process.env.SCALE_STORM, [10_000])[0];
    const product = String(DEFAULT_MAX_CACHED_WORKFLOWS);
    const caches = (process.env.SCALE_CACHES ?? `${product},sdk`).split(',').map((c) => c.trim());
    out.storm = [];
    for (const c of caches) {
      const cache = c === 'sdk' ? sdkDefaultCache() : Number(c);
      const label = c === 'sdk' ? `${cache} (SDK default)` : c === product ? `${c} (product default)` : c;
      log(`  storm: ${n} services, worker cache ${label} (load ${loadavg()})`);
      out.storm.push(await stormRun(log, { services: n, cache, cacheLabel: label, perRequest: 100, inFlight: 10 }));
    }
  }
  if (parts.includes('overhead'))
    out.overhead = await runOverhead(log, nums(process.env.SCALE_OVERHEAD, [1, 100, 1000]));
  if (parts.includes('systemd')) out.systemd = await runSystemd(log, nums(process.env.SCALE_SYSTEMD, [100, 300]));
  return out;
}

// ---------------------------------------------------------------- markdown

const f0 = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '—' : x.toFixed(0));
const f1 = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '—' : x.toFixed(1));
const sp = (s: Spread) => `${f0(s.median)} [${f0(s.min)}–${f0(s.max)}]`;
const pct = (p: Percentiles) => `${f0(p.p50)} / ${f0(p.p95)} / ${f0(p.p99)}`;

export function renderScaleMarkdown(r: ScaleResults): string {
  const out: string[] = [];
  if (r.storm?.length) {
    out.push(
      '| worker cache | load before → after | accepted (s) | resent | all `validating` (s) | RSS at 1k / 5k / 10k validating: worker; dev server (MiB) | peak worker / dev server | settled worker / dev server | signal+query evicted / cached (ms) | max history: entity (sampled) / coordinator |',
      '|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const s of r.storm) {
      const ms = s.milestones;
      out.push(
        `| ${s.cacheLabel} | ${s.loadavgBefore} → ${s.loadavgAfter} | ${f1(s.acceptedSeconds)} (${s.requests} × ${s.perRequest}) | ${s.resent} ${JSON.stringify(s.refused)} | ${f1(s.allValidatingSeconds)} | ${ms.map((m) => f0(m.workerRssMiB)).join(' / ')}; ${ms.map((m) => f0(m.devServerRssMiB)).join(' / ')} | ${f0(s.peak.workerRssMiB)} / ${f0(s.peak.devServerRssMiB)} | ${f0(s.settled.workerRssMiB)} / ${f0(s.settled.devServerRssMiB)} | ${sp(s.signal.evictedMs)} / ${sp(s.signal.cachedMs)} | ${s.history.entityMax} (${s.history.entitySampled}) / ${s.history.coordinator ?? '—'} (run ${s.history.coordinatorRun ?? '—'}) |`,
      );
    }
    out.push(
      '',
      '| worker cache | wall (s) | CPU s: dev server | worker main / workflow / core / other | API process | load generator | validating time per milestone (s) |',
      '|---|---|---|---|---|---|---|',
    );
    for (const s of r.storm) {
      const w = s.cpu.worker;
      out.push(
        `| ${s.cacheLabel} | ${f1(s.cpu.wallSeconds)} | ${f1(s.cpu.devServer)} | ${f1(w.main)} / ${f1(w.workflow)} / ${f1(w.core)} / ${f1(w.other)} | ${f1(s.cpu.api.total)} | ${f1(s.cpu.loadgen)} | ${s.milestones.map((m) => `${m.validating}: ${f1(m.seconds)}`).join(', ')} |`,
      );
    }
    out.push('', 'SDK worker metrics (sums over labels) at the moment all were validating:', '');
    for (const s of r.storm) {
      const keys = Object.keys(s.sdk).sort();
      out.push(`- cache ${s.cacheLabel}: ${keys.map((k) => `${k}=${+s.sdk[k].toFixed(2)}`).join(', ')}`);
    }
    out.push('');
  }
  const levelRows = (levels: OverheadLevel[], extra = false) => [
    `| incidents | limits | verified | restart call − alert − window p50 / p95 / p99 (ms) | closed − active − stable p50 / p95 / p99 (ms) | first alert → last closed (s) | load |${extra ? ' stop → last verified (s) | active at end | restarted |' : ''}`,
    `|---|---|---|---|---|---|---|${extra ? '---|---|---|' : ''}`,
    ...levels.map(
      (l) =>
        `| ${l.label} | ${l.limits} | ${l.verified}/${l.incidents} | ${pct(l.restartOverheadMs)} | ${pct(l.closeOverheadMs)} | ${f1(l.lastClosedSeconds)} | ${l.loadavg} |${
          extra
            ? ` ${f1((l as SystemdLevel).stopToLastVerifiedSeconds)} | ${(l as SystemdLevel).activeAtEnd} | ${(l as SystemdLevel).restartedOnce} |`
            : ''
        }`,
    ),
  ];
  const breakdown = (levels: OverheadLevel[]) => {
    const keys = Object.keys(levels[0]?.parts ?? {});
    return [
      `| where the time goes, p50 (p99) ms | ${levels.map((l) => l.label).join(' | ')} |`,
      `|---|${levels.map(() => '---').join('|')}|`,
      ...keys.map(
        (k) => `| ${k} | ${levels.map((l) => `${f0(l.parts[k]?.p50)} (${f0(l.parts[k]?.p99)})`).join(' | ')} |`,
      ),
    ];
  };
  if (r.overhead) {
    out.push(
      `Overhead (FakeManager, ${r.overhead.hosts} hosts, validation window ${r.overhead.validationWindowMs / 1000} s, stable period ${r.overhead.verifyStableMs / 1000} s):`,
      '',
      ...levelRows(r.overhead.levels),
      '',
      ...breakdown(r.overhead.levels),
      '',
    );
  }
  if (r.systemd) {
    if (r.systemd.skipped) out.push(`systemd part skipped: ${r.systemd.skipped}`);
    else
      out.push(
        `Real systemd (private user manager, ${r.systemd.hosts} host workers in one process, ${r.systemd.limits}):`,
        '',
        ...levelRows(r.systemd.levels, true),
        '',
        ...breakdown(r.systemd.levels),
        '',
      );
  }
  return out.join('\n');
}
