#!/usr/bin/env node
// The whole test command: type-check, lint, format check, then every test file on Node's
// built-in runner through tsx. Prints one final `N passed, N failed` line (checks count too)
// and exits non-zero when anything failed.
//
//   node scripts/test.mjs                 # everything
//   node scripts/test.mjs test/policy     # only test files under these paths (skips the static checks)
//   SELFHEAL_TEST_SKIP_STATIC=1 ...       # skip tsc/eslint/prettier
//
// test/cluster runs only when named (`npm run test:cluster`): it needs the Temporal server built
// from source and PostgreSQL (scripts/cluster.mjs).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const selected = process.argv.slice(2);

// Files in these folders, and `*.integration.test.ts` files beside the unit tests of what they
// test, run one at a time after the rest: they start real servers (Temporal dev server,
// Prometheus, Alertmanager, a systemd user manager) and a 2-core machine is faster running them
// serially than fighting over CPU.
const SERIAL_DIRS = ['test/integration', 'test/e2e', 'test/chaos', 'test/cluster'];
const ONLY_WHEN_NAMED = ['test/cluster'];

let passed = 0;
let failed = 0;
const failures = [];
const details = [];

function runCommand(label, cmd, args, opts = {}) {
  return new Promise((resolvePromise) => {
    const started = Date.now();
    process.stdout.write(`\n▶ ${label}\n`);
    const child = spawn(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
    child.on('close', (code, signal) => {
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      process.stdout.write(`${code === 0 ? '✔' : '✖'} ${label} (${secs}s)\n`);
      resolvePromise(code === 0 && !signal);
    });
  });
}

async function check(label, cmd, args) {
  if (await runCommand(label, cmd, args)) passed++;
  else {
    failed++;
    failures.push(label);
  }
}

function findTests(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTests(p));
    else if (entry.name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

async function runTests(label, files, concurrency) {
  if (files.length === 0) return;
  const tmp = mkdtempSync(join(tmpdir(), 'selfheal-tap-'));
  const tapFile = join(tmp, 'results.tap');
  const args = [
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${concurrency}`,
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...files.map((f) => relative(root, f)),
  ];
  await runCommand(`${label} (${files.length} files)`, process.execPath, args, {
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let tap = '';
  try {
    tap = readFileSync(tapFile, 'utf8');
  } catch {
    // no TAP output at all: the runner itself crashed
  }
  rmSync(tmp, { recursive: true, force: true });
  const num = (key) => Number(new RegExp(`^# ${key} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
  const p = num('pass');
  const f = num('fail') + num('cancelled');
  if (!tap) {
    failed++;
    failures.push(`${label}: test runner produced no results`);
    return;
  }
  passed += p;
  failed += f;
  for (const m of tap.matchAll(/^\s*not ok \d+ - (.*)$/gm)) failures.push(`${label}: ${m[1]}`);
  details.push(...failureDetails(tap));
}

/**
 * Why each failed test failed, from its TAP diagnostics: location, error and the top of the stack,
 * a few lines each. Printed last, so a CI log cut to its tail still says why (a suite that failed
 * only because a test in it failed adds nothing and is left out).
 */
function failureDetails(tap, maxLines = 30) {
  const lines = tap.split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)not ok \d+ - (.*)$/.exec(lines[i]);
    if (!m || lines[i + 1]?.trim() !== '---') continue;
    const block = [];
    for (let j = i + 2; j < lines.length && lines[j].trim() !== '...'; j++) block.push(lines[j].slice(m[1].length + 2));
    if (block.some((l) => l.startsWith("failureType: 'subtestsFailed'"))) continue;
    const keep = block.filter(
      (l) => !/^(duration_ms|type|failureType):/.test(l) && !/\(node:|^\s+node:|new (Safe)?Promise|Array\.map/.test(l),
    );
    const cut =
      keep.length > maxLines ? [...keep.slice(0, maxLines), `... (${keep.length - maxLines} more lines)`] : keep;
    out.push(`  ✖ ${m[2]}\n${cut.map((l) => `      ${l}`).join('\n')}`);
  }
  return out;
}

const started = Date.now();
const wantStatic = selected.length === 0 && !process.env.SELFHEAL_TEST_SKIP_STATIC;
if (wantStatic) {
  await check('typecheck (tsc --noEmit)', bin('tsc'), ['--noEmit', '-p', 'tsconfig.json']);
  await check('lint (eslint)', bin('eslint'), ['.']);
  await check('format (prettier --check)', bin('prettier'), [
    '--check',
    '--log-level=warn',
    '--no-error-on-unmatched-pattern',
    '{src,test,bench}/**/*.ts',
    'scripts/**/*.mjs',
    'bin/*.js',
    'eslint.config.mjs',
  ]);
}

const roots = selected.length ? selected.map((s) => resolve(root, s)) : [join(root, 'test')];
const files = roots
  .flatMap((r) => (statSync(r).isDirectory() ? findTests(r) : [r]))
  .filter((f) => selected.length > 0 || !ONLY_WHEN_NAMED.some((d) => relative(root, f).startsWith(d + '/')));
const isSerial = (f) =>
  SERIAL_DIRS.some((d) => relative(root, f).startsWith(d + '/')) || f.endsWith('.integration.test.ts');
await runTests(
  'unit and workflow tests',
  files.filter((f) => !isSerial(f)),
  2,
);
await runTests('integration and end-to-end tests', files.filter(isSerial), 1);

const mins = ((Date.now() - started) / 60000).toFixed(1);
if (details.length) process.stdout.write('\nWhy:\n' + details.join('\n') + '\n');
if (failures.length) {
  process.stdout.write('\nFailed:\n' + failures.map((f) => `  - ${f}`).join('\n') + '\n');
}
process.stdout.write(`\n${passed} passed, ${failed} failed (${mins} min)\n`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
