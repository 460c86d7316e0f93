// Profiling aid: one run of the simulate bench's week (as bench/simulate-once.ts) with Core's own
// counters (workflow tasks and activities per workflow type, requests per operation, read from the
// SDK's Prometheus exporter on a free local port) and the driver's calls to the test server timed
// (time-skipping sleeps, clock reads, signal-with-start deliveries).
//   npx tsx bench/simulate-profile.ts [services] [shards|-] [processes|-] [auto|real|skip]
// PROFILE_METRICS_FILE=path also writes Core's raw metrics there.
// With `processes`, Core counters cover only this process (the shards' children are not counted).
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg } from 'node:os';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { simulate } from '../src/simulate/driver';
import { buildReport } from '../src/simulate/report';
import { benchWeek } from './lib/alert-week';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Timed {
  calls: number;
  ms: number;
}
const timed: Record<string, Timed> = {};
function wrap<A extends unknown[], R>(name: string, fn: (...a: A) => Promise<R>): (...a: A) => Promise<R> {
  const t = (timed[name] ??= { calls: 0, ms: 0 });
  return async (...a: A) => {
    const t0 = performance.now();
    try {
      return await fn(...a);
    } finally {
      t.calls++;
      t.ms += performance.now() - t0;
    }
  };
}

/** Sums Prometheus text lines `name{labels} value` by the given label. */
function sumBy(text: string, metric: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`) && !line.startsWith(`${metric} `)) continue;
    const m = new RegExp(`${label}="([^"]*)"`).exec(line);
    const key = m?.[1] ?? '';
    out[key] = (out[key] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

async function main() {
  const n = Number(process.argv[2] ?? 50);
  const shards = process.argv[3] && process.argv[3] !== '-' ? Number(process.argv[3]) : undefined;
  const processes = process.argv[4] === 'processes';
  const coordinator = (process.argv[5] ?? 'auto') as 'auto' | 'real' | 'skip';
  const port = await freePort();
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: {
      logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} },
      metrics: { prometheus: { bindAddress: `127.0.0.1:${port}` } },
    },
  });
  const create = TestWorkflowEnvironment.createTimeSkipping.bind(TestWorkflowEnvironment);
  TestWorkflowEnvironment.createTimeSkipping = async (...a) => {
    const env = await wrap('start test server', create)(...a);
    env.sleep = wrap('env.sleep (time skipping)', env.sleep);
    env.currentTimeMs = wrap('env.currentTimeMs', env.currentTimeMs.bind(env));
    const w = env.client.workflow;
    w.signalWithStart = wrap('driver signalWithStart', w.signalWithStart.bind(w)) as typeof w.signalWithStart;
    return env;
  };
  const { config, history } = benchWeek(n);
  const load0 = loadavg()[0];
  const t0 = performance.now();
  let metrics = '';
  const result = await simulate({
    config,
    history,
    shards,
    processes,
    coordinator,
    onProgress: (d, total) => {
      // Scraped just before the end (the workers' counters go with the workers).
      if (d === total && !metrics)
        void fetch(`http://127.0.0.1:${port}/metrics`).then(async (r) => (metrics = await r.text()));
    },
  });
  const wallS = (performance.now() - t0) / 1000;
  if (!metrics) metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const r = buildReport(result, history.source);
  const t = r.total;
  const admissions = t.restarts + t.refused.budget + t.refused.cooldown + t.refused.breaker;
  const wft = sumBy(metrics, 'temporal_workflow_task_execution_latency_count', 'workflow_type');
  const acts = sumBy(metrics, 'temporal_activity_execution_latency_count', 'activity_type');
  const locals = sumBy(metrics, 'temporal_local_activity_execution_latency_count', 'activity_type');
  const requests = sumBy(metrics, 'temporal_request', 'operation');
  const cache = Object.fromEntries(
    [
      'temporal_sticky_cache_hit',
      'temporal_sticky_cache_miss',
      'temporal_sticky_cache_size',
      'temporal_workflow_task_replay_latency_count',
      'temporal_workflow_task_replay_latency_sum',
      'temporal_workflow_task_execution_latency_sum',
      'temporal_workflow_task_schedule_to_start_latency_sum',
      'temporal_workflow_task_schedule_to_start_latency_count',
    ].map((m) => [m, sumBy(metrics, m, 'task_queue')]),
  );
  if (process.env.PROFILE_METRICS_FILE) writeFileSync(process.env.PROFILE_METRICS_FILE, metrics);
  const perShard = Object.fromEntries(
    Object.entries(timed).map(([k, v]) => [
      k,
      { calls: v.calls, sPerShard: +(v.ms / 1000 / result.shards).toFixed(1) },
    ]),
  );
  console.log(
    JSON.stringify(
      {
        services: n,
        shards: result.shards,
        processes,
        coordinator: result.coordinator,
        wallS: +wallS.toFixed(1),
        hPerS: +(r.simulatedHours / wallS).toFixed(2),
        load: [load0, loadavg()[0]].map((x) => +x.toFixed(2)),
        incidents: t.incidents,
        restarts: t.restarts,
        admissions,
        workflowTasks: wft,
        perIncident: Object.fromEntries(Object.entries(wft).map(([k, v]) => [k, +(v / t.incidents).toFixed(2)])),
        perRestart: Object.fromEntries(Object.entries(wft).map(([k, v]) => [k, +(v / t.restarts).toFixed(2)])),
        activities: acts,
        localActivities: locals,
        requests,
        cache,
        driver: perShard,
        total: t,
      },
      null,
      1,
    ),
  );
}
void main();
