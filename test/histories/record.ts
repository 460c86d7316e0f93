// Records the histories under test/histories/ from real runs on the time-skipping test server, so
// the replay test can prove that changed workflow code still replays workflows already running.
// Re-record only on purpose (an intentional, versioned change). Histories of earlier releases stay:
// record the current one under a new prefix, e.g. npx tsx test/histories/record.ts v0.2-
// (files are named <prefix>incident-*.json; no prefix overwrites the first release's).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { signalWithStartService } from '../../src/client/signals';
import {
  alertFiringSignal,
  alertResolvedSignal,
  approveSignal,
  skipSignal,
  stateQuery,
  workflowIdFor,
  type ServiceStateView,
} from '../../src/workflows/definitions';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { startWorkers, timeSkippingEnv } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';
import { WebhookSink } from '../helpers/webhook-sink';

async function main() {
  const dir = tempDir();
  const sink = await WebhookSink.start();
  const config = testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
escalation: { webhooks: [ { url: "${sink.url}" } ] }
policy: { verifyTimeout: 5s, verifyStableFor: 0s, hostTimeout: 2s }
services:
  - { name: recorded.service, host: homelab }
  - { name: failing.service, host: homelab, policy: { validationWindow: 10s } }
  - { name: flapping.service, host: homelab, policy: { validationWindow: 10s } }
`,
    dir,
  );
  const fake = new FakeManager();
  const env = await timeSkippingEnv();
  const workers = await startWorkers(env, config, { hosts: ['homelab'], managers: () => fake });
  try {
    const until = async (service: string, pred: (s: ServiceStateView) => boolean) =>
      waitFor(async () => {
        const s = await env.client.workflow.getHandle(workflowIdFor('homelab', service)).query(stateQuery);
        return pred(s) ? s : null;
      });

    // 1. A full incident: alert, validation window, re-check, restart, verification, back to idle.
    await signalWithStartService(env.client, config, 'homelab', 'recorded.service', alertFiringSignal, {
      alertnames: ['ServiceStalled'],
      summary: 'crypto agent stopped making progress',
    });
    await until('recorded.service', (s) => s.phase === 'validating');
    await env.sleep('2m');
    await until('recorded.service', (s) => s.phase === 'idle' && s.totals.restarts === 1);

    // 2. Escalation: three failed attempts, ConsecutiveFailures, approve (one more), skip.
    fake.set('failing.service', { failsOnStart: true });
    await signalWithStartService(env.client, config, 'homelab', 'failing.service', alertFiringSignal, {
      alertnames: ['ServiceStalled'],
    });
    await until('failing.service', (s) => s.phase === 'validating');
    await env.sleep('10s');
    await until('failing.service', (s) => s.consecutiveFailures === 1 && s.phase === 'cooldown');
    await env.sleep('61s');
    await until('failing.service', (s) => s.consecutiveFailures === 2 && s.phase === 'cooldown');
    await env.sleep('61s');
    await until('failing.service', (s) => s.phase === 'escalated');
    const h = env.client.workflow.getHandle(workflowIdFor('homelab', 'failing.service'));
    await h.signal(approveSignal, { by: 'recorder' });
    await until('failing.service', (s) => s.consecutiveFailures === 4 && s.phase === 'escalated');
    await h.signal(skipSignal, { by: 'recorder' });
    await until('failing.service', (s) => s.phase === 'idle');

    // 3. Alerts by identity, and a flapping service: one of two alerts of a name resolves (the
    // incident goes on, restart, verified), then failed restarts with a recovery on its own between.
    await signalWithStartService(env.client, config, 'homelab', 'flapping.service', alertFiringSignal, {
      alertnames: ['ServiceStalled'],
      alerts: [
        { id: 'fp-down', name: 'ServiceStalled' },
        { id: 'fp-unit-inactive', name: 'ServiceStalled' },
      ],
    });
    const flap = env.client.workflow.getHandle(workflowIdFor('homelab', 'flapping.service'));
    await until('flapping.service', (s) => s.phase === 'validating');
    await flap.signal(alertResolvedSignal, { alerts: [{ id: 'fp-down', name: 'ServiceStalled' }] });
    await env.sleep('10s');
    await until('flapping.service', (s) => s.phase === 'idle' && s.totals.restarts === 1);
    fake.set('flapping.service', { failsOnStart: true });
    await env.sleep('61s');
    await signalWithStartService(env.client, config, 'homelab', 'flapping.service', alertFiringSignal, {
      alertnames: ['ServiceStalled'],
    });
    await until('flapping.service', (s) => s.phase === 'validating');
    await env.sleep('10s');
    await until('flapping.service', (s) => s.consecutiveFailures === 1 && s.phase === 'cooldown');
    await flap.signal(alertResolvedSignal, {});
    await until('flapping.service', (s) => s.phase === 'idle' && s.consecutiveFailures === 1);

    const prefix = process.argv[2] ?? '';
    for (const [service, file] of [
      ['recorded.service', 'incident-restart.json'],
      ['failing.service', 'incident-escalation.json'],
      ...(prefix ? [['flapping.service', 'incident-identity-flapping.json']] : []),
    ]) {
      const history = await env.client.workflow.getHandle(workflowIdFor('homelab', service)).fetchHistory();
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
