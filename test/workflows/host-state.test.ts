// A host worker that cannot write its host-local state (the restart markers that make a restart
// idempotent) must not restart blindly, must not count the attempt against the restart budget, and
// must say so: a failed attempt `host-state-unwritable`, escalated once per incident. Runs the real
// host activities on the time-skipping server; the state folder sits under a regular file, so it
// cannot be created even by root.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Config } from '../../src/config/config';
import { signalWithStartService } from '../../src/client/signals';
import { alertFiringSignal, stateQuery, workflowIdFor, type ServiceStateView } from '../../src/workflows/definitions';
import { testConfig, tempDir } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { startWorkers, timeSkippingEnv, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';
import { WebhookSink } from '../helpers/webhook-sink';

let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let sink: WebhookSink;
let config: Config;
const fake = new FakeManager();
const dir = tempDir();
const SVC = 'marker.service';

before(async () => {
  sink = await WebhookSink.start();
  // A read-only /opt under ProtectSystem=strict has the same effect: mkdir/writeFile fail.
  writeFileSync(join(dir, 'not-a-folder'), '');
  const stateDir = join(dir, 'not-a-folder', 'host-state');
  config = testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
escalation: { webhooks: [ { url: "${sink.url}" } ] }
worker: { stateDir: ${stateDir} }
policy: { validationWindow: 10s, cooldown: 60s, maxConsecutiveFailures: 2, verifyTimeout: 5s, verifyStableFor: 0s, hostTimeout: 2s }
services:
  - { name: ${SVC}, host: h1 }
`,
    dir,
  );
  env = await timeSkippingEnv();
  workers = await startWorkers(env, config, { hosts: ['h1'], managers: () => fake });
});

after(async () => {
  await workers?.shutdown();
  await env?.teardown();
  await sink?.close();
});

const state = (): Promise<ServiceStateView> =>
  env.client.workflow.getHandle(workflowIdFor('h1', SVC)).query(stateQuery);

async function until(what: string, pred: (s: ServiceStateView) => boolean): Promise<ServiceStateView> {
  return waitFor(
    async () => {
      const s = await state();
      return pred(s) ? s : null;
    },
    { what, timeoutMs: 30_000 },
  );
}

const escalations = (event: string) => sink.events().filter((e) => e.service === SVC && e.event === event);

describe('a host worker that cannot write its restart markers', () => {
  it('fails the attempt as host-state-unwritable without restarting, counts no restart, and escalates once', async () => {
    fake.stop(SVC);
    await signalWithStartService(env.client, config, 'h1', SVC, alertFiringSignal, {
      alertnames: ['ServiceStalled'],
    });
    await until('validating', (s) => s.phase === 'validating');
    await env.sleep('10s');
    const s = await until('first attempt failed', (x) => x.consecutiveFailures === 1);
    const attempt = s.recentAttempts[0];
    assert.equal(attempt.reason, 'host-state-unwritable');
    assert.equal(attempt.restarted, false, 'the restart command never ran');
    assert.match(attempt.detail ?? '', /not-a-folder\/host-state/, 'names the folder it could not write');
    assert.match(attempt.detail ?? '', /worker\.stateDir/, 'says which setting to fix');
    assert.equal(s.restartsLastHour, 0, 'nothing taken from the restart budget');
    assert.equal(s.totals.restarts, 0);
    assert.equal(fake.restartsOf(SVC), 0, 'systemctl restart was never called');
    await waitFor(() => escalations('HostStateUnwritable').length === 1, { what: 'HostStateUnwritable escalation' });
    assert.match(String(escalations('HostStateUnwritable')[0].message), /host-state/);

    // Later attempts of the same incident fail the same way; the escalation is not repeated.
    for (let n = 2; n <= 3; n++) {
      await until('cooldown', (x) => x.phase === 'cooldown');
      await env.sleep('61s');
      await until(`attempt ${n}`, (x) => x.consecutiveFailures === n);
    }
    const last = await until('escalated', (x) => x.phase === 'escalated');
    assert.equal(last.restartsLastHour, 0);
    await waitFor(() => escalations('ConsecutiveFailures').length === 1, { what: 'ConsecutiveFailures' });
    assert.equal(escalations('HostStateUnwritable').length, 1, 'HostStateUnwritable once per incident');
    assert.equal(fake.restartsOf(SVC), 0);
  });
});
