// 5. Reads at scale (issue 12): `selfheal status` (table and --json) as a real CLI process, GET
// /services and GET /metrics over HTTP, and the visibility list behind them, at 1,000 and 10,000
// guarded services on the embedded dev server. Workflows are created by signal-with-start (a
// `resume` signal, which changes nothing) without a worker: the reads come from the visibility
// index, which holds every workflow from its start.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog } from '../src/activities/audit';
import { buildApp } from '../src/api/app';
import { QUERY_ALL_LIMIT, ServiceActions } from '../src/client/actions';
import { Pool } from '../src/client/pool';
import { createMetrics } from '../src/metrics/metrics';
import { workflowStateSource } from '../src/metrics/state-source';
import { signalWithStartService, startSearchAttributes, workflowInput } from '../src/client/signals';
import { CONTROL_TASK_QUEUE, resumeSignal, WORKFLOW_TYPE, workflowIdFor } from '../src/workflows/definitions';
import { fleet, fleetConfig, fleetConfigYaml, TOKEN, tempDir } from './lib/fixtures';
import { sleep, spread, type Spread } from './lib/stats';
import { startDevServer } from './lib/temporal';

export interface ReadCase {
  services: number;
  /** Of them, not at rest (validating). */
  active: number;
  via: string;
  ms: Spread;
  /** Bytes of the answer (HTTP body or CLI stdout). */
  bytes: number;
}

export interface ReadsResult {
  /** Workflows created per step; `active`: how many of all so far are not at rest (validating). */
  create: { services: number; active: number; seconds: number; perSec: number }[];
  cases: ReadCase[];
  /** `selfheal --version`: the CLI's own start-up, the floor of any CLI read. */
  cliStartupMs: Spread;
}

const ROOT = join(__dirname, '..');

function runCli(args: string[]): Promise<{ ms: number; bytes: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'selfheal.js'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let bytes = 0;
    let err = '';
    child.stdout.on('data', (b: Buffer) => (bytes += b.length));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`selfheal ${args.join(' ')} exited ${code}: ${err.slice(0, 500)}`));
      else resolve({ ms: performance.now() - t0, bytes, code });
    });
  });
}

async function timed(rounds: number, fn: () => Promise<number>): Promise<{ ms: Spread; bytes: number }> {
  const ms: number[] = [];
  let bytes = 0;
  await fn(); // warm-up
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    bytes = await fn();
    ms.push(performance.now() - t0);
  }
  return { ms: spread(ms), bytes };
}

export async function runReadsBench(
  log: (line: string) => void,
  opts: { sizes: number[]; rounds: number },
): Promise<ReadsResult> {
  const max = Math.max(...opts.sizes);
  const all = fleet(max, ['h1', 'h2', 'h3', 'h4']);
  const t = await startDevServer(max);
  const result: ReadsResult = { create: [], cases: [], cliStartupMs: spread([0]) };
  try {
    const startup: number[] = [];
    for (let i = 0; i < opts.rounds; i++) startup.push((await runCli(['--version'])).ms);
    result.cliStartupMs = spread(startup);
    let created = 0;
    let activeCount = 0;
    for (const k of [...opts.sizes].sort((a, b) => a - b)) {
      const dir = tempDir();
      const config = fleetConfig({ services: all.slice(0, k), address: t.address, dataDir: dir });
      const t0 = performance.now();
      // The first step is a storm (every service validating), later steps add services at rest.
      const active = created === 0;
      await new Pool(32).map(all.slice(created, k), (s) =>
        active
          ? t.client.workflow.signalWithStart(WORKFLOW_TYPE, {
              workflowId: workflowIdFor(s.host, s.name),
              taskQueue: CONTROL_TASK_QUEUE,
              args: [workflowInput(config, s.host, s.name)],
              signal: resumeSignal.name,
              signalArgs: [{ by: 'bench' }],
              typedSearchAttributes: startSearchAttributes(s.host, s.name, 'validating', 'HEALING'),
            })
          : signalWithStartService(t.client, config, s.host, s.name, resumeSignal, { by: 'bench' }),
      );
      if (active) activeCount = k;
      const secs = (performance.now() - t0) / 1000;
      result.create.push({ services: k - created, active: activeCount, seconds: secs, perSec: (k - created) / secs });
      created = k;
      for (let i = 0; ; i++) {
        const { count } = await t.client.workflow.count(`WorkflowType = '${WORKFLOW_TYPE}'`);
        if (count >= k) break;
        if (i > 600) throw new Error(`visibility shows ${count} of ${k} workflows after 60 s`);
        await sleep(100);
      }
      log(`  ${k} workflows (${secs.toFixed(1)} s to create); reading`);

      const actions = new ServiceActions(t.client, config, 30_000);
      const add = (via: string, r: { ms: Spread; bytes: number }) => {
        result.cases.push({ services: k, active: activeCount, via, ...r });
        log(
          `  ${k} (${activeCount} active) ${via}: ${r.ms.median.toFixed(0)} ms [${r.ms.min.toFixed(0)}–${r.ms.max.toFixed(0)}]`,
        );
      };
      add(
        'ServiceActions.listFromVisibility()',
        await timed(opts.rounds, async () => (await actions.listFromVisibility()).length),
      );

      const metrics = createMetrics();
      metrics.initServices(config);
      metrics.setStateSource(workflowStateSource(actions, config));
      const app = await buildApp({
        config,
        client: t.client,
        metrics,
        actions,
        audit: new AuditLog(config.audit.file),
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      try {
        const addr = app.server.address();
        const base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
        const get = async (path: string, token?: string) => {
          const r = await fetch(base + path, token ? { headers: { authorization: `Bearer ${token}` } } : {});
          if (!r.ok) throw new Error(`GET ${path}: ${r.status}`);
          return (await r.arrayBuffer()).byteLength;
        };
        add('GET /services', await timed(opts.rounds, () => get('/services', TOKEN)));
        add('GET /metrics', await timed(opts.rounds, () => get('/metrics')));
      } finally {
        await app.close();
      }

      const configFile = join(dir, 'selfheal.yaml');
      writeFileSync(configFile, fleetConfigYaml({ services: all.slice(0, k), address: t.address, dataDir: dir }));
      add(
        'selfheal status',
        await timed(opts.rounds, async () => (await runCli(['status', '--config', configFile])).bytes),
      );
      add(
        'selfheal status --json',
        await timed(opts.rounds, async () => (await runCli(['status', '--json', '--config', configFile])).bytes),
      );
    }
  } finally {
    await t.close();
  }
  return result;
}

if (require.main === module) {
  const sizes = (process.env.READS_SIZES ?? '1000,10000').split(',').map(Number);
  runReadsBench((l) => process.stdout.write(`${l}\n`), { sizes, rounds: 3 }).then(
    (r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'),
    (err) => {
      process.stderr.write(`${err.stack}\n`);
      process.exit(1);
    },
  );
}

/** The Markdown table of the reads section. */
export function readsSection(r: ReadsResult): string {
  const f = (s: Spread) => `${s.median.toFixed(0)} ms [${s.min.toFixed(0)}–${s.max.toFixed(0)}]`;
  return [
    '### Reads at scale (`bench/reads.ts`, dev server)',
    '',
    `Workflows made by signal-with-start without a worker: the first step all validating (a storm), later steps ` +
      `add services at rest. Reads past ${QUERY_ALL_LIMIT} services come from the visibility index, which lists only ` +
      `the workflows that are not at rest. CLI start-up alone (\`selfheal --version\`): ${f(r.cliStartupMs)}.`,
    '',
    '| services | active | read | time | bytes |',
    '| --- | --- | --- | --- | --- |',
    ...r.cases.map((c) => `| ${c.services} | ${c.active} | ${c.via} | ${f(c.ms)} | ${c.bytes} |`),
  ].join('\n');
}
