#!/usr/bin/env node
// What `npm run test:cluster` needs beyond the test suite: a real Temporal server (built from
// go.temporal.io/server at a pinned version, with its SQL schema tool, into the git-ignored
// .tools/temporal-server) and PostgreSQL (the Debian package). Idempotent: skips the ~6-minute
// build when the stamp names the same version and the binaries are there.
//
//   node scripts/cluster.mjs        # or: node scripts/setup.mjs --tests --cluster
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const TEMPORAL_SERVER_VERSION = '1.30.4';
export const serverDir = join(root, '.tools', 'temporal-server');
const stampFile = join(serverDir, 'stamp.json');
const MODULE = 'go.temporal.io/server';
// What the helper (test/helpers/temporal-cluster.ts) uses from the module besides the binaries.
const MODULE_FILES = ['schema/postgresql/v12', 'config/development-postgres12.yaml', 'config/dynamicconfig'];

function say(msg) {
  process.stderr.write(`cluster: ${msg}\n`);
}

function fail(msg) {
  process.stderr.write(`cluster: error: ${msg}\n`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: opts.capture ? 'pipe' : ['ignore', 'inherit', 'inherit'], ...opts });
  return { ok: res.status === 0, stdout: res.stdout?.toString() ?? '', error: res.error };
}

function readStamp() {
  try {
    return JSON.parse(readFileSync(stampFile, 'utf8'));
  } catch {
    return null;
  }
}

/** Builds the server and the SQL tool once per version; copies the schema and config it needs. */
export function ensureTemporalServer() {
  const stamp = readStamp();
  const bins = ['server', 'sql'].map((b) => join(serverDir, 'bin', b));
  const files = MODULE_FILES.map((f) => join(serverDir, f));
  if (stamp?.version === TEMPORAL_SERVER_VERSION && [...bins, ...files].every((p) => existsSync(p))) return stamp;
  if (!run('sh', ['-c', 'command -v go'], { capture: true }).ok) {
    fail(`building the Temporal server ${TEMPORAL_SERVER_VERSION} needs Go (https://go.dev/dl/); none on PATH`);
  }
  rmSync(serverDir, { recursive: true, force: true });
  mkdirSync(join(serverDir, 'bin'), { recursive: true });
  const pkgs = [
    `${MODULE}/cmd/server@v${TEMPORAL_SERVER_VERSION}`,
    `${MODULE}/cmd/tools/sql@v${TEMPORAL_SERVER_VERSION}`,
  ];
  say(`building the Temporal server and SQL tool ${TEMPORAL_SERVER_VERSION} (go install; ~6 min on 2 cores, once)`);
  const started = Date.now();
  const env = { ...process.env, GOBIN: join(serverDir, 'bin'), GOFLAGS: '-buildvcs=false' };
  if (!run('go', ['install', ...pkgs], { env }).ok) fail(`go install ${pkgs.join(' ')} failed; see above`);
  const modCache = run('go', ['env', 'GOMODCACHE'], { capture: true, env }).stdout.trim();
  const moduleDir = join(modCache, `${MODULE}@v${TEMPORAL_SERVER_VERSION}`);
  for (const f of MODULE_FILES) cpSync(join(moduleDir, f), join(serverDir, f), { recursive: true });
  const next = { version: TEMPORAL_SERVER_VERSION, builtInSeconds: Math.round((Date.now() - started) / 1000) };
  writeFileSync(stampFile, JSON.stringify(next, null, 2) + '\n');
  say(`Temporal server ${TEMPORAL_SERVER_VERSION} ready in .tools/temporal-server (${next.builtInSeconds}s)`);
  return next;
}

/** The folder holding initdb and pg_ctl of the newest installed PostgreSQL, or null. */
export function postgresBinDir() {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(base, versions[0], 'bin') : null;
}

export function ensurePostgres() {
  if (postgresBinDir()) return;
  if (process.getuid?.() !== 0 || !run('sh', ['-c', 'command -v apt-get'], { capture: true }).ok) {
    fail('the cluster test needs PostgreSQL; install it with:\n  sudo apt-get install -y postgresql');
  }
  say('installing the Debian package postgresql');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!run('apt-get', ['update', '-qq'], { env }).ok) fail('apt-get update failed');
  if (!run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'postgresql'], { env }).ok) {
    fail('apt-get install postgresql failed');
  }
  if (!postgresBinDir()) fail('after apt-get, /usr/lib/postgresql/*/bin/pg_ctl is still missing');
}

export function ensureCluster() {
  ensurePostgres();
  ensureTemporalServer();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) ensureCluster();
