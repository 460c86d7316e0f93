// The entity's reports to the fleet coordinator, counted in its history: every incident reports
// opened, its restart ask, the slot's release and closed; a run started with `fleetReports: false`
// (selfheal simulate without the coordinator) sends only the ask.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { signalWithStartService } from '../../src/client/signals';
import type { Config } from '../../src/config/config';
import { alertFiringSignal, stateQuery, workflowIdFor } from '../../src/workflows/definitions';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { startWorkers, timeSkippingEnv, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let config: Config;

before(async () => {
  const dir = tempDir();
  config = testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
policy: { validationWindow: 2s, verifyTimeout: 5s, verifyStableFor: 0s, hostTimeout: 2s }
services:
  - { name: reports.service, host: h }
  - { name: asks-only.service, host: h }
`,
    dir,
  );
  env = await timeSkippingEnv();
  const fake = new FakeManager();
  workers = await startWorkers(env, config, { hosts: ['h'], managers: () => fake });
});

after(async () => {
  await workers?.shutdown();
  await env?.teardown();
});

/** How many reports an entity sent: its notifyFleet local activities' markers. */
async function reportsSent(service: string): Promise<number> {
  const { events } = await env.client.workflow.getHandle(workflowIdFor('h', service)).fetchHistory();
  return (events ?? []).filter((e) => {
    const data = e.markerRecordedEventAttributes?.details?.data?.payloads?.[0]?.data;
    return data != null && /"activity_type":"notifyFleet"/.test(Buffer.from(data).toString());
  }).length;
}

async function oneIncident(service: string, input: { fleetReports?: boolean }) {
  await signalWithStartService(
    env.client,
    config,
    'h',
    service,
    alertFiringSignal,
    { alertnames: ['ServiceStalled'] },
    input,
  );
  const handle = env.client.workflow.getHandle(workflowIdFor('h', service));
  await waitFor(
    async () => {
      const s = await handle.query(stateQuery);
      return s.phase === 'idle' && s.totals.restarts === 1 ? s : null;
    },
    { what: `${service}: restarted and closed`, timeoutMs: 60_000 },
  );
}

describe('reports to the fleet coordinator', () => {
  it('an incident reports opened, its ask, the release and closed', async () => {
    await oneIncident('reports.service', {});
    assert.equal(await reportsSent('reports.service'), 4);
  });

  it('with fleetReports: false only the ask goes out (the restart still waits for its grant)', async () => {
    await oneIncident('asks-only.service', { fleetReports: false });
    assert.equal(await reportsSent('asks-only.service'), 1);
  });
});
