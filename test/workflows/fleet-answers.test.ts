// The fleet coordinator answers the restarts asked together in one workflow task (issue 12, target 3):
// answering each ask in its own task made N incidents that reached their restart at once wait N
// coordinator tasks (2.4 s at p50 for 20 of them on the bench machine, far more at 1,000).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { reportToFleet } from '../../src/activities/fleet';
import { createFleetWorker } from '../../src/worker/workers';
import { FLEET_WORKFLOW_ID, type FleetReport } from '../../src/workflows/fleet-definitions';
import { tempDir, testConfig } from '../helpers/config';
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
    const dir = tempDir();
    const services = Array.from({ length: N }, (_, i) => `  - { name: s${i}.service, host: h${i} }`).join('\n');
    const config = testConfig(
      `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
fleet: { breaker: { enabled: false }, maxRestartsInFlight: 100, maxRestartsInFlightPerHost: 10 }
services:
${services}
`,
      dir,
    );
    // Every ask is in the coordinator's history before any worker takes its first task.
    for (let i = 0; i < N; i++) {
      const report: FleetReport = {
        kind: 'request',
        host: `h${i}`,
        service: `s${i}.service`,
        workflowId: `selfheal/h${i}/s${i}.service`,
        incidentId: `inc-${i}`,
        ask: 1,
        approved: false,
        dependsOn: [],
      };
      await reportToFleet(env.client, report);
    }
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
