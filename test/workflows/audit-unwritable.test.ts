// An audit log that cannot be written must not delay remediation (issue 8, defect 3): the restart
// happens when the validation window ends, the counters count it, and the log catches up once it
// is writable again.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Config } from '../../src/config/config';
import { createMetrics } from '../../src/metrics/metrics';
import { signalWithStartService } from '../../src/client/signals';
import { alertFiringSignal, stateQuery, workflowIdFor, type ServiceStateView } from '../../src/workflows/definitions';
import { testConfig, tempDir } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { startWorkers, timeSkippingEnv, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let config: Config;
const metrics = createMetrics();
const fake = new FakeManager();
const dir = tempDir();
const logDir = join(dir, 'logs');

before(async () => {
  config = testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(logDir, 'selfheal.log')} }
policy: { validationWindow: 2m, verifyTimeout: 5s, verifyStableFor: 0s, hostTimeout: 2s }
services:
  - { name: a.service, host: h1 }
`,
    dir,
  );
  writeFileSync(logDir, 'a file where the log folder should be');
  env = await timeSkippingEnv();
  workers = await startWorkers(env, config, { hosts: ['h1'], managers: () => fake, metrics });
});

after(async () => {
  await workers?.shutdown();
  await env?.teardown();
});

describe('remediation with an unwritable audit log (time-skipping server)', () => {
  it('restarts when the validation window ends, counts it, and writes the log once it is writable', async () => {
    const svc = 'a.service';
    const h = await signalWithStartService(env.client, config, 'h1', svc, alertFiringSignal, {
      alertnames: ['ServiceStalled'],
    });
    const state = () => h.query(stateQuery);
    const v = await waitFor(async () => ((await state()).phase === 'validating' ? state() : null), {
      what: 'validating',
      timeoutMs: 60_000,
    });
    const opened = Date.parse(v.incident!.openedAt);
    await env.sleep('2m');
    const s: ServiceStateView = await waitFor(
      async () => {
        const x = await state();
        return x.totals.restarts === 1 && x.phase === 'idle' ? x : null;
      },
      { what: 'restarted', timeoutMs: 60_000 },
    );
    const restartedAt = Date.parse(s.restartTimes[0]);
    assert.ok(
      restartedAt - opened < 120_000 + 15_000,
      `restart ${Math.round((restartedAt - opened) / 1000)}s after the alert (window 120s)`,
    );
    assert.equal(fake.restartsOf(svc), 1);
    const counted = (await metrics.registry.getSingleMetric('selfhealing_restarts_total')!.get()).values.find(
      (x) => x.labels.service === svc && x.labels.result === 'success',
    );
    assert.equal(counted?.value, 1, 'the restart is counted although its audit line could not be written');

    rmSync(logDir);
    mkdirSync(logDir);
    const events = await waitFor(
      () => {
        try {
          const e = readFileSync(config.audit.file, 'utf8')
            .trim()
            .split('\n')
            .map((l) => (JSON.parse(l) as { event: string; workflowId: string }).event);
          return e.includes('incident-closed') ? e : null;
        } catch {
          return null;
        }
      },
      { what: 'the audit log caught up', timeoutMs: 30_000 },
    );
    for (const e of ['incident-opened', 'restart', 'attempt-finished', 'incident-closed']) {
      assert.ok(events.includes(e), `${e} in ${events.join(',')}`);
    }
    assert.equal(workflowIdFor('h1', svc), h.workflowId);
  });
});
