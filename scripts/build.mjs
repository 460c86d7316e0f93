#!/usr/bin/env node
// Compiles src/ to dist/ and bundles the workflow code once (dist/workflow-bundle.js), so workers
// load a prebuilt bundle instead of bundling at every start. Skips work that is already up to date.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const quiet = process.argv.includes('--quiet');
const say = (m) => quiet || process.stderr.write(`build: ${m}\n`);

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}
const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

const srcTime = Math.max(newest(join(root, 'src')), mtime(join(root, 'package-lock.json')));
const cliJs = join(root, 'dist', 'cli', 'index.js');
if (mtime(cliJs) < srcTime) {
  say('compiling TypeScript (tsc -p tsconfig.build.json)');
  const res = spawnSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (res.status !== 0) process.exit(res.status ?? 1);
}

const bundle = join(root, 'dist', 'workflow-bundle.js');
if (
  mtime(bundle) <
  Math.max(
    newest(join(root, 'src', 'workflows')),
    newest(join(root, 'src', 'policy')),
    mtime(join(root, 'package-lock.json')),
  )
) {
  say('bundling workflow code');
  const { bundleWorkflowCode, DefaultLogger } = require('@temporalio/worker');
  const { code } = await bundleWorkflowCode({
    workflowsPath: join(root, 'dist', 'workflows', 'index.js'),
    logger: new DefaultLogger('WARN'),
  });
  writeFileSync(bundle, code);
}
say('up to date');
