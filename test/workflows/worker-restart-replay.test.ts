// A run whose workers are restarted (cache lost, history replayed) and queried at every phase of
// an incident must still replay deterministically: the patched() decisions and the carried state
// may not depend on which worker process took which task. Real dev server, in-memory unit.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import type { Config } from '../../src/config/config';
import { signalWithStartService } from '../../src/client/signals';
import { alertFiringSignal, stateQuery, workflowIdFor, type ServiceStateView } from '../../src/workflows/definitions';
import { testConfig, tempDir } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { devServerEnv, startWorkers, workflowBundle, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

let env: TestWorkflowEnvironment;
let config: Config;
let yaml: string;
let workers: RunningWorkers | null = null;
const fake = new FakeManager();
const dir = tempDir();

before(async () => {
  config = testConfig(
    (yaml = `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
# Three of four services go down at once in the cache test: not a storm this test is about.
fleet: { breaker: { enabled: false } }
policy: { validationWindow: 2s, cooldown: 1s, maxRestartsPerHour: 3, maxConsecutiveFailures: 2, verifyTimeout: 3s, verifyStableFor: 0s, hostTimeout: 2s }
services:
  - { name: hop.service, host: h1 }
  - { name: evict-a.service, host: h1 }
  - { name: evict-b.service, host: h1 }
  - { name: evict-c.service, host: h1 }
`),
    dir,
  );
  env = await devServerEnv();
});

after(async () => {
  await workers?.shutdown();
  await env?.teardown();
});

const start = async () => (workers = await startWorkers(env, config, { hosts: ['h1'], managers: () => fake }));
const restartWorkers = async () => {
  await workers?.shutdown();
  await start();
};

describe('worker restarts and queries during an incident', () => {
  it('leaves a history that replays deterministically', async () => {
    const svc = 'hop.service';
    const handle = env.client.workflow.getHandle(workflowIdFor('h1', svc));
    try {
      await incidentsAcrossRestarts(svc, handle);
    } catch (err) {
      // Keep the history: it is the reproduction.
      const file = join(dir, 'history.json');
      writeFileSync(file, historyToJSON(await handle.fetchHistory()));
      throw new Error(`${(err as Error).message} (history kept in ${file})`, { cause: err });
    }
  });

  async function incidentsAcrossRestarts(svc: string, handle: WorkflowHandle): Promise<void> {
    const state = () => handle.query(stateQuery) as Promise<ServiceStateView>;
    await start();
    // Two incidents, each restarted (the alert keeps firing): the patches sit in later tasks.
    await signalWithStartService(env.client, config, 'h1', svc, alertFiringSignal, { alertnames: ['ServiceStalled'] });
    await state();
    await restartWorkers();
    await state();
    await waitFor(async () => ((await state()).totals.restarts === 1 ? true : null), {
      what: 'first incident closed',
      timeoutMs: 30_000,
    });
    await restartWorkers();
    await state();
    fake.stop(svc);
    await signalWithStartService(env.client, config, 'h1', svc, alertFiringSignal, { alertnames: ['ServiceStalled'] });
    await state();
    await restartWorkers();
    await state();
    const s = await waitFor(
      async () => {
        const v = await state();
        return v.phase === 'idle' && v.totals.restarts === 2 ? v : null;
      },
      { what: 'restart verified', timeoutMs: 60_000 },
    ).catch(async (err) => {
      const h = await handle.fetchHistory();
      const failed = h.events?.filter((e) => e.workflowTaskFailedEventAttributes);
      throw new Error(
        `${err.message}; state ${JSON.stringify(await state().catch((e) => String(e)))}; task failures ${JSON.stringify(failed?.map((e) => e.workflowTaskFailedEventAttributes?.failure?.message))}`,
      );
    });
    await restartWorkers();
    await state();
    assert.equal(fake.restartsOf(svc), 2);
    assert.equal(s.totals.incidents, 2);
    const history = await handle.fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history);
  }

  it('remediates correctly when the worker cache holds two of three workflows (each task replays from history)', async () => {
    await workers?.shutdown();
    const tiny = testConfig(yaml.replace('services:', 'worker: { maxCachedWorkflows: 2 }\nservices:'), dir);
    assert.equal(tiny.worker.maxCachedWorkflows, 2);
    workers = await startWorkers(env, tiny, { hosts: ['h1'], managers: () => fake });
    const svcs = ['evict-a.service', 'evict-b.service', 'evict-c.service'];
    for (const svc of svcs) {
      fake.stop(svc);
      await signalWithStartService(env.client, tiny, 'h1', svc, alertFiringSignal, { alertnames: ['ServiceStalled'] });
    }
    for (const svc of svcs) {
      const handle = env.client.workflow.getHandle(workflowIdFor('h1', svc));
      await waitFor(
        async () => {
          const v = (await handle.query(stateQuery)) as ServiceStateView;
          return v.phase === 'idle' && v.totals.restarts === 1 ? v : null;
        },
        { what: `${svc} restarted once`, timeoutMs: 60_000 },
      );
      assert.equal(fake.restartsOf(svc), 1, svc);
      const history = await handle.fetchHistory();
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history).catch((err: Error) => {
        const file = join(dir, `history-${svc}.json`);
        writeFileSync(file, historyToJSON(history));
        throw new Error(`${err.message} (history kept in ${file})`, { cause: err });
      });
    }
  });
});
