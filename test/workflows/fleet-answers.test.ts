// The fleet coordinator answers the restarts asked together in one workflow task (issue 12, target 3):
// answering each ask in its own task made N incidents that reached their restart at once wait N
// coordinator tasks (2.4 s at p50 for 20 of them on the bench machine, far more at 1,000).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createFleetWorker } from '../../src/worker/workers';
import { FLEET_WORKFLOW_ID } from '../../src/workflows/fleet-definitions';
import { askAll, askersConfig } from '../helpers/fleet-asks';
import { timeSkippingEnv, workflowBundle } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

const N = 6;

describe('fleet coordinator: answers go out together', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await timeSkippingEnv();
  });
  after(() => env?.teardown());

  it(`answers ${N} restarts asked at once in one workflow task`, async () => {
    const config = askersConfig(N);
    // Every ask is in the coordinator's history before any worker takes its first task.
    await askAll(env.client, N);
    const worker = await createFleetWorker({
      config,
      connection: env.nativeConnection,
      workflows: { workflowBundle: await workflowBundle() },
    });
    const running = worker.run();
    try {
      const handle = env.client.workflow.getHandle(FLEET_WORKFLOW_ID);
      const initiated = await waitFor(
        async () => {
          const h = await handle.fetchHistory();
          const sent = (h.events ?? []).filter((e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes);
          return sent.length >= N ? sent : null;
        },
        { what: `the coordinator's ${N} answers`, timeoutMs: 60_000 },
      );
      // Group the answers by the workflow task that sent them.
      const byTask = new Map<string, number>();
      for (const e of initiated) {
        const task = String(e.signalExternalWorkflowExecutionInitiatedEventAttributes!.workflowTaskCompletedEventId);
        byTask.set(task, (byTask.get(task) ?? 0) + 1);
      }
      assert.deepEqual([...byTask.values()], [N], `answers per workflow task: ${JSON.stringify([...byTask])}`);
    } finally {
      worker.shutdown();
      await running;
    }
  });
});
