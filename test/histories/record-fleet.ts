// Records the fleet-safety paths (patch fleet-safety) as replay histories: an incident held by an
// open breaker and let go through the half-open trial, one let go after the breaker closed, a
// dependent held for its dependency, a flapping service approved through, and the coordinator's
// own run. Histories of a release stay once recorded:
//   npx tsx test/histories/record-fleet.ts v0.3-
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { signalWithStartService } from '../../src/client/signals';
import {
  alertFiringSignal,
  alertResolvedSignal,
  approveSignal,
  stateQuery,
  workflowIdFor,
  type ServiceStateView,
} from '../../src/workflows/definitions';
import { FLEET_WORKFLOW_ID } from '../../src/workflows/fleet-definitions';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { startWorkers, timeSkippingEnv } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';
import { WebhookSink } from '../helpers/webhook-sink';

async function main() {
  const prefix = process.argv[2];
  if (!prefix) throw new Error('usage: npx tsx test/histories/record-fleet.ts <prefix, e.g. v0.3->');
  const dir = tempDir();
  const sink = await WebhookSink.start();
  const config = testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
escalation: { webhooks: [ { url: "${sink.url}" } ] }
policy: { validationWindow: 30s, cooldown: 10s, verifyTimeout: 5s, verifyStableFor: 0s, hostTimeout: 2s }
fleet: { breaker: { quietPeriod: 2m, fleet: { maxOpenIncidents: 1000, maxOpenShare: 1 } } }
services:
${Array.from({ length: 7 }, (_, i) => `  - { name: s${i}.service, host: storm }`).join('\n')}
  - { name: shared.service, host: dep }
  - { name: agent.service, host: dep, dependsOn: [ shared.service ] }
  - { name: flap.service, host: flap, policy: { validationWindow: 10s, flapping: { incidents: 2, window: 1h } } }
`,
    dir,
  );
  const fake = new FakeManager();
  const env = await timeSkippingEnv();
  const client = env.client;
  const workers = await startWorkers(env, config, { hosts: ['storm', 'dep', 'flap'], managers: () => fake });
  const handle = (host: string, service: string) => client.workflow.getHandle(workflowIdFor(host, service));
  const state = (host: string, service: string) => handle(host, service).query(stateQuery) as Promise<ServiceStateView>;
  const fire = (host: string, service: string) =>
    signalWithStartService(client, config, host, service, alertFiringSignal, { alertnames: ['ServiceDown'] });
  const skipUntil = async (what: string, probe: () => Promise<boolean>) => {
    for (let i = 0; i < 200; i++) {
      if (await probe().catch(() => false)) return;
      await env.sleep('5s');
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  try {
    // Storm: 5 of 7 down, breaker trips; 3 resolve; the trial and then the other restart.
    for (let i = 0; i < 5; i++) {
      fake.stop(`s${i}.service`);
      await fire('storm', `s${i}.service`);
    }
    await env.sleep('40s');
    await waitFor(async () => (await state('storm', 's4.service')).phase === 'held');
    for (const i of [0, 1, 2]) await handle('storm', `s${i}.service`).signal(alertResolvedSignal, {});
    await skipUntil('both restarted', async () => {
      const s = await Promise.all([3, 4].map((i) => state('storm', `s${i}.service`)));
      return s.every((x) => x.phase === 'idle' && x.totals.restarts === 1);
    });

    // Dependency: shared fails once, agent waits, then goes after shared verified.
    fake.set('shared.service', { failsOnStart: true });
    for (const s of ['shared.service', 'agent.service']) {
      fake.stop(s);
      await fire('dep', s);
    }
    await env.sleep('35s');
    await waitFor(async () => (await state('dep', 'agent.service')).phase === 'held');
    fake.set('shared.service', { failsOnStart: false });
    await skipUntil('agent restarted', async () => (await state('dep', 'agent.service')).totals.restarts === 1);

    // Flapping: the second incident in the window is held for approval; approved.
    fake.stop('flap.service');
    await fire('flap', 'flap.service');
    await waitFor(async () => (await state('flap', 'flap.service')).phase === 'validating');
    await handle('flap', 'flap.service').signal(alertResolvedSignal, {});
    await waitFor(async () => (await state('flap', 'flap.service')).phase === 'idle');
    await fire('flap', 'flap.service');
    await env.sleep('15s');
    await waitFor(async () => (await state('flap', 'flap.service')).phase === 'held');
    await handle('flap', 'flap.service').signal(approveSignal, { by: 'rec' });
    await skipUntil('flap restarted', async () => (await state('flap', 'flap.service')).totals.restarts === 1);

    const recorded: [string, string][] = [
      [workflowIdFor('storm', 's3.service'), 'fleet-breaker-s3.json'],
      [workflowIdFor('storm', 's4.service'), 'fleet-breaker-s4.json'],
      [workflowIdFor('dep', 'agent.service'), 'fleet-dependency.json'],
      [workflowIdFor('flap', 'flap.service'), 'fleet-flapping.json'],
      [FLEET_WORKFLOW_ID, 'fleet-coordinator.json'],
    ];
    for (const [id, file] of recorded) {
      const history = await client.workflow.getHandle(id).fetchHistory();
      writeFileSync(join(__dirname, prefix + file), historyToJSON(history) + '\n');
      console.log(`wrote test/histories/${prefix}${file}: ${history.events?.length} events`);
    }
  } finally {
    await workers.shutdown();
    await env.teardown();
    await sink.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
