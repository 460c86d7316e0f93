// `selfheal worker --control` on its own (the split layout of deploy/systemd and docker-compose):
// the counters it serves on worker.metrics include selfhealing_temporal_up, and it reports the truth,
// so SelfHealingUnavailable (`selfhealing_temporal_up == 0`) does not fire for a healthy worker and
// does fire when it cannot reach Temporal.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { CliProcess, ROOT } from '../helpers/cli';
import { tempDir } from '../helpers/config';
import { freePorts } from '../helpers/ports';
import { devServerEnv } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

const dir = tempDir('selfheal-control-');
let env: TestWorkflowEnvironment | null = null;
let worker: CliProcess | null = null;
let metricsPort: number;

const temporalUp = async (): Promise<number | null> => {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = /^selfhealing_temporal_up (\S+)$/m.exec(text);
  return m ? Number(m[1]) : null;
};

before(async () => {
  // Built code, as the units run it: the worker loads dist/workflow-bundle.js instead of bundling.
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  env = await devServerEnv();
  [metricsPort] = await freePorts(1);
  const configFile = join(dir, 'selfheal.yaml');
  writeFileSync(
    configFile,
    `temporal: { address: "${env.address}", dataDir: ${join(dir, 'data')} }
worker: { metrics: "127.0.0.1:${metricsPort}", temporalMetrics: "" }
services:
  - { name: jira-worker.service, host: homelab }
`,
  );
  worker = CliProcess.start(['worker', '--control', '--config', configFile], { fromSource: false });
  await waitFor(() => worker!.stdout.includes('Press Ctrl-C to stop.') || worker!.child.exitCode !== null, {
    what: 'the control worker banner',
    timeoutMs: 60_000,
  });
  assert.equal(worker.child.exitCode, null, worker.output);
});

after(async () => {
  await worker?.interrupt(5_000);
  await env?.teardown();
});

describe('selfheal worker --control on its own', () => {
  it('exports selfhealing_temporal_up 1 while it reaches Temporal', async () => {
    assert.match(worker!.stdout, new RegExp(`metrics http://127\\.0\\.0\\.1:${metricsPort}/metrics`));
    assert.equal(await temporalUp(), 1, worker!.output);
  });

  it('exports selfhealing_temporal_up 0 once Temporal is gone', async () => {
    await env!.teardown();
    env = null;
    await waitFor(async () => (await temporalUp()) === 0, { what: 'selfhealing_temporal_up 0', timeoutMs: 30_000 });
  });
});
