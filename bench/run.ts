// `npm run bench`: speed and memory of selfheal on this machine, everything real (Temporal dev
// server and time-skipping test server, the Fastify app, HTTP on loopback). Prints a summary, writes
// bench/results/latest.json and latest.md, and refreshes the generated section of BENCHMARKS.md
// (a partial run writes bench/results/partial.* and leaves both alone).
//
//   npm run bench                          # everything (~4 min on 2 cores)
//   BENCH_ONLY=policy,history npm run bench # some sections: policy, history, webhook, entities, reads, simulate, cluster, fleet, scale
//   BENCH_ONLY=cluster npm run bench        # dev server vs a Temporal cluster on PostgreSQL (needs
//                                           # `node scripts/setup.mjs --cluster`; skipped without it)
//
// No timed assertions: figures are reported with their spread, compared as ratios within one run.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg as osLoadavg } from 'node:os';
import * as prettier from 'prettier';
import { join } from 'node:path';
import { runClusterBench } from './cluster';
import { runEntitiesBench } from './entities';
import { runFleetBench } from './fleet';
import { runHistoryBench } from './history';
import { runPolicyBench } from './policy';
import { runSimulateBench } from './simulate';
import { runReadsBench } from './reads';
import { runScaleBench } from './scale';
import { MARK_BEGIN, MARK_END, renderMarkdown, renderSummary, type BenchResults } from './lib/report';
import { machineInfo } from './lib/system';
import { runWebhookBench } from './webhook';

const ROOT = join(__dirname, '..');
const RESULTS = join(__dirname, 'results');
const SECTIONS = [
  'policy',
  'entities',
  'history',
  'webhook',
  'reads',
  'simulate',
  'cluster',
  'fleet',
  'scale',
] as const;
type Section = (typeof SECTIONS)[number];
/** Hard bound on the whole run: a hung server must not hang the bench. */
const OVERALL_LIMIT_MS = 20 * 60_000;

/** 1-minute load average: how busy the shared machine was (2 cores: above 2 means waiting for CPU). */
const loadavg = () => osLoadavg()[0].toFixed(2);

function selected(): Section[] {
  const only = process.env.BENCH_ONLY?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // The scale section runs for many minutes (10,000-service storms): only when asked for by name.
  if (!only?.length) return SECTIONS.filter((s) => s !== 'scale');
  const bad = only.filter((s) => !(SECTIONS as readonly string[]).includes(s));
  if (bad.length) throw new Error(`BENCH_ONLY: unknown section(s) ${bad.join(', ')}; known: ${SECTIONS.join(', ')}`);
  return SECTIONS.filter((s) => only.includes(s));
}

/** Writes a file formatted the way the repository's Prettier config wants it (results are committed). */
async function writePretty(file: string, text: string): Promise<void> {
  const options = (await prettier.resolveConfig(file)) ?? {};
  writeFileSync(file, await prettier.format(text, { ...options, filepath: file }));
}

async function updateBenchmarksMd(section: string): Promise<string> {
  const file = join(ROOT, 'BENCHMARKS.md');
  if (!existsSync(file)) {
    await writePretty(file, `# Benchmarks\n\n${section}\n`);
    return 'created';
  }
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(MARK_BEGIN.slice(0, 30));
  const b = text.indexOf(MARK_END);
  if (a < 0 || b < a) {
    await writePretty(file, `${text.trimEnd()}\n\n${section}\n`);
    return 'appended';
  }
  await writePretty(file, text.slice(0, a) + section + text.slice(b + MARK_END.length));
  return 'updated';
}

async function main(): Promise<number> {
  const started = performance.now();
  const sections = selected();
  const t0 = Date.now();
  const log = (l: string) => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${l}\n`);
  const results: BenchResults = {
    meta: {
      command: process.env.BENCH_ONLY ? `BENCH_ONLY=${process.env.BENCH_ONLY} npm run bench` : 'npm run bench',
      startedAt: new Date().toISOString(),
      wallSeconds: 0,
      machine: machineInfo(),
      sections,
      sectionTimes: {},
      note: 'median [min–max] over rounds; compare ratios within one run, never against fixed thresholds',
    },
    errors: {},
  };
  log(`selfheal bench: ${sections.join(', ')} on ${results.meta.machine.nproc} cores, node ${process.version}`);

  const run = async <T>(name: Section, fn: () => Promise<T> | T): Promise<T | undefined> => {
    if (!sections.includes(name)) return undefined;
    log(`▶ ${name}`);
    const s0 = performance.now();
    const load0 = loadavg();
    try {
      const r = await fn();
      const secs = (performance.now() - s0) / 1000;
      results.meta.sectionTimes[name] = { seconds: secs, loadavgBefore: load0, loadavgAfter: loadavg() };
      log(`✔ ${name} (${secs.toFixed(1)} s, load average ${load0} → ${loadavg()})`);
      return r;
    } catch (err) {
      results.errors[name] = (err as Error).stack ?? String(err);
      log(`✖ ${name} failed: ${(err as Error).message}`);
      return undefined;
    }
  };

  // Entities runs right after the in-process policy bench, so its memory baseline is not inflated by
  // what the webhook and history sections leave behind in this process.
  results.policy = await run('policy', () => runPolicyBench(log));
  results.entities = await run('entities', () =>
    runEntitiesBench(log, { steps: [200, 500, 1000], fanOutRounds: 5, directRounds: 3 }),
  );
  results.history = await run('history', () => runHistoryBench(log));
  results.webhook = await run('webhook', () => runWebhookBench(log, { services: 200, rounds: 5, concurrency: 8 }));
  results.simulate = await run('simulate', () => runSimulateBench(log, { services: 50, rounds: 3 }));
  results.reads = await run('reads', () => runReadsBench(log, { sizes: [1000, 10000], rounds: 3 }));
  results.cluster = await run('cluster', () => runClusterBench(log));
  results.fleet = await run('fleet', () => runFleetBench(log));
  results.scale = await run('scale', () => runScaleBench(log));
  results.meta.wallSeconds = (performance.now() - started) / 1000;

  mkdirSync(RESULTS, { recursive: true });
  // A partial run (BENCH_ONLY) never replaces the results of the last full run.
  const full = sections.length === SECTIONS.length - 1 && !sections.includes('scale');
  const base = full ? 'latest' : 'partial';
  await writePretty(join(RESULTS, `${base}.json`), JSON.stringify(results, null, 2));
  const md = renderMarkdown(results);
  await writePretty(join(RESULTS, `${base}.md`), md + '\n');
  const how = full ? await updateBenchmarksMd(md) : 'left alone (partial run)';
  process.stdout.write(`\n${renderSummary(results)}\n\n`);
  log(`results: bench/results/${base}.json, bench/results/${base}.md; BENCHMARKS.md ${how}`);
  log(`wall time ${results.meta.wallSeconds.toFixed(1)} s`);
  return Object.keys(results.errors).length ? 1 : 0;
}

const guard = setTimeout(() => {
  process.stderr.write(`bench: still running after ${OVERALL_LIMIT_MS / 60_000} min; giving up\n`);
  process.exit(2);
}, OVERALL_LIMIT_MS);
guard.unref();

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
