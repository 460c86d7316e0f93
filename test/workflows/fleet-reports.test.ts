// Reports made at once by a control worker reach the fleet coordinator in few signals, each report
// exactly once (issue 12, target 4): in an alert storm every new incident's `opened` was its own
// signal-with-start on the one coordinator, serialized by the server (~750 ms a call), while the
// calling entity held a workflow task slot.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createFleetActivities } from '../../src/activities/fleet';
import { breakerStatus } from '../../src/client/breaker';
import { createFleetWorker } from '../../src/worker/workers';
import {
  fleetReportSignal,
  fleetReportsSignal,
  FLEET_WORKFLOW_ID,
  type FleetReport,
} from '../../src/workflows/fleet-definitions';
import { askersConfig } from '../helpers/fleet-asks';
import { timeSkippingEnv, workflowBundle } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

const N = 20;

describe('fleet reports from one control worker', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await timeSkippingEnv();
  });
  after(() => env?.teardown());

  it(`${N} incidents opened at once: each counted once, in two signals`, async () => {
    const config = askersConfig(N);
    const worker = await createFleetWorker({
      config,
      connection: env.nativeConnection,
      workflows: { workflowBundle: await workflowBundle() },
    });
    const running = worker.run();
    try {
      // The entity workflows' local activity, N calls at once (the coordinator is not running yet).
      const { notifyFleet } = createFleetActivities(config, env.client);
      await Promise.all(
        Array.from({ length: N }, (_, i) =>
          notifyFleet({ kind: 'opened', host: `h${i}`, service: `s${i}.service`, incidentId: `inc-${i}` }),
        ),
      );
      await waitFor(async () => (await breakerStatus(env.client, 10_000))?.openIncidents === N, {
        what: `the coordinator counting ${N} open incidents`,
        timeoutMs: 60_000,
      });
      const events = (await env.client.workflow.getHandle(FLEET_WORKFLOW_ID).fetchHistory()).events ?? [];
      const signals = events.flatMap((e) => {
        const a = e.workflowExecutionSignaledEventAttributes;
        if (a?.signalName === fleetReportSignal.name)
          return [[defaultPayloadConverter.fromPayload<FleetReport>(a.input!.payloads![0])]];
        if (a?.signalName === fleetReportsSignal.name)
          return [defaultPayloadConverter.fromPayload<FleetReport[]>(a.input!.payloads![0])];
        return [];
      });
      // The first starts the coordinator; the other N - 1, made while it was in flight, follow together.
      assert.deepEqual(
        signals.map((s) => s.length),
        [1, N - 1],
      );
      const services = signals.flat().map((r) => r.service);
      assert.deepEqual(
        services,
        Array.from({ length: N }, (_, i) => `s${i}.service`),
        'each report once, in order',
      );
    } finally {
      worker.shutdown();
      await running;
    }
  });
});
