// Records one history per decision path of the entity workflow (pause, approval mode, dry-run,
// budget, unreachable host, skip, continue-as-new in the middle of an incident, an unconfigured
// service), so a change to the workflow's shape must replay every one of them. Histories of a
// release stay once recorded; record a later release under its own prefix:
//   npx tsx test/histories/record-paths.ts v0.2-
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { signalWithStartService } from '../../src/client/signals';
import {
  alertFiringSignal,
  alertResolvedSignal,
  approveSignal,
  CONTROL_TASK_QUEUE,
  pauseSignal,
  resumeSignal,
  skipSignal,
  stateQuery,
  WORKFLOW_TYPE,
  workflowIdFor,
  type ServiceStateView,
  type ServiceWorkflowInput,
} from '../../src/workflows/definitions';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { startWorkers, timeSkippingEnv } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';
import { WebhookSink } from '../helpers/webhook-sink';

const fast = '{ validationWindow: 10s }';

async function main() {
  const prefix = process.argv[2];
  if (!prefix) throw new Error('usage: npx tsx test/histories/record-paths.ts <prefix, e.g. v0.2->');
  const dir = tempDir();
  const sink = await WebhookSink.start();
  const config = testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
escalation: { webhooks: [ { url: "${sink.url}" } ] }
policy: { verifyTimeout: 5s, verifyStableFor: 0s, hostTimeout: 2s }
services:
  - { name: paused.service, host: homelab, policy: ${fast} }
  - { name: approval.service, host: homelab, policy: { mode: approval, validationWindow: 10s } }
  - { name: dryrun.service, host: homelab, policy: { mode: dry-run, validationWindow: 10s } }
  - { name: budget.service, host: homelab, policy: ${fast} }
  - { name: ghost.service, host: ghost, policy: { validationWindow: 10s, hostTimeout: 1s } }
  - { name: skip.service, host: homelab }
  - { name: can.service, host: homelab, policy: ${fast} }
`,
    dir,
  );
  const fake = new FakeManager();
  const env: TestWorkflowEnvironment = await timeSkippingEnv();
  const client: Client = env.client;
  const workers = await startWorkers(env, config, { hosts: ['homelab'], managers: () => fake });
  const handle = (service: string, host = 'homelab') => client.workflow.getHandle(workflowIdFor(host, service));
  let last: ServiceStateView | null = null;
  const until = (service: string, what: string, pred: (s: ServiceStateView) => boolean, host = 'homelab') =>
    waitFor(
      async () => {
        const s = await handle(service, host).query(stateQuery);
        last = s;
        return pred(s) ? s : null;
      },
      { what: `${service}: ${what}`, timeoutMs: 30_000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; state: ${JSON.stringify(last)}`);
    });
  const fire = (service: string, host = 'homelab') =>
    signalWithStartService(client, config, host, service, alertFiringSignal, { alertnames: ['ServiceStalled'] });
  const recorded: [string, string, string, string | undefined][] = [];
  const keep = (service: string, name: string, host = 'homelab', runId?: string) =>
    recorded.push([service, host, name, runId]);

  try {
    // Paused before the alert, paused again during validation (a human event mid-wait), held,
    // resumed, restarted; then a timed pause that expires on its own.
    await signalWithStartService(client, config, 'homelab', 'paused.service', pauseSignal, { by: 'rec' });
    await until('paused.service', 'paused', (s) => s.paused);
    await fire('paused.service');
    await until('paused.service', 'validating', (s) => s.phase === 'validating');
    await handle('paused.service').signal(pauseSignal, { by: 'rec', reason: 'still maintenance' });
    await env.sleep('10s');
    await until('paused.service', 'held', (s) => s.phase === 'paused' && s.incident !== null);
    await handle('paused.service').signal(resumeSignal, { by: 'rec' });
    await until('paused.service', 'restarted', (s) => s.phase === 'idle' && s.totals.restarts === 1);
    const inOneMinute = new Date(Date.parse((await handle('paused.service').query(stateQuery)).restartTimes[0]) + 120_000);
    await handle('paused.service').signal(pauseSignal, { until: inOneMinute.toISOString() });
    await until('paused.service', 'paused again', (s) => s.paused);
    await env.sleep('3m');
    await until('paused.service', 'pause expired', (s) => !s.paused);
    keep('paused.service', 'paths-pause.json');

    // Approval mode: waits, a human approves, restart.
    await fire('approval.service');
    await until('approval.service', 'validating', (s) => s.phase === 'validating');
    await env.sleep('10s');
    await until('approval.service', 'awaiting approval', (s) => s.phase === 'awaiting-approval');
    await handle('approval.service').signal(approveSignal, { by: 'rec' });
    await until('approval.service', 'restarted', (s) => s.phase === 'idle' && s.totals.restarts === 1);
    keep('approval.service', 'paths-approval.json');

    // Dry-run: decides and logs, never acts.
    await fire('dryrun.service');
    await until('dryrun.service', 'validating', (s) => s.phase === 'validating');
    await env.sleep('10s');
    await until('dryrun.service', 'dry-run done', (s) => s.phase === 'idle' && s.totals.incidents === 1);
    keep('dryrun.service', 'paths-dry-run.json');

    // Budget: three restarts, the fourth refused (exhausted, escalated), a resolve while exhausted,
    // then a fifth incident approved through the budget.
    for (let n = 1; n <= 3; n++) {
      await fire('budget.service');
      await until('budget.service', `incident ${n}`, (s) => s.phase === 'validating');
      await env.sleep('10s');
      await until('budget.service', `restart ${n}`, (s) => s.phase === 'idle' && s.totals.restarts === n);
      await env.sleep('61s');
    }
    await fire('budget.service');
    await until('budget.service', 'incident 4', (s) => s.phase === 'validating');
    await env.sleep('10s');
    await until('budget.service', 'exhausted', (s) => s.phase === 'exhausted');
    await handle('budget.service').signal(alertResolvedSignal, {});
    await until('budget.service', 'resolved while exhausted', (s) => s.phase === 'idle');
    await fire('budget.service');
    await until('budget.service', 'incident 5', (s) => s.phase === 'validating');
    await env.sleep('10s');
    await until('budget.service', 'exhausted again', (s) => s.phase === 'exhausted');
    await handle('budget.service').signal(approveSignal, { by: 'rec' });
    await until('budget.service', 'approved through', (s) => s.phase === 'idle' && s.totals.restarts === 4);
    keep('budget.service', 'paths-budget.json');

    // A host with no worker: host-unreachable three times, escalated, skipped.
    await fire('ghost.service', 'ghost');
    await until('ghost.service', 'validating', (s) => s.phase === 'validating', 'ghost');
    await env.sleep('10s');
    for (let n = 1; n <= 2; n++) {
      await until('ghost.service', `attempt ${n}`, (s) => s.consecutiveFailures === n && s.phase === 'cooldown', 'ghost');
      await env.sleep('61s');
    }
    await until('ghost.service', 'escalated', (s) => s.phase === 'escalated', 'ghost');
    await handle('ghost.service', 'ghost').signal(skipSignal, { by: 'rec' });
    await until('ghost.service', 'skipped', (s) => s.phase === 'idle', 'ghost');
    keep('ghost.service', 'paths-host-unreachable.json', 'ghost');

    // Skip during validation; an approve with nothing to approve; resume when not paused.
    await fire('skip.service');
    await until('skip.service', 'validating', (s) => s.phase === 'validating');
    await handle('skip.service').signal(skipSignal, { by: 'rec' });
    await until('skip.service', 'skipped', (s) => s.phase === 'idle');
    await handle('skip.service').signal(approveSignal, { by: 'rec' });
    await handle('skip.service').signal(resumeSignal, { by: 'rec' });
    await until('skip.service', 'ignored signals recorded', (s) => s.phase === 'idle');
    await env.sleep('1m');
    keep('skip.service', 'paths-skip.json');

    // Continue-as-new in the middle of an incident (in cooldown after a failed attempt): the new run
    // resumes, fails twice more and escalates. The history of the run that resumed is recorded.
    fake.set('can.service', { failsOnStart: true });
    const input: ServiceWorkflowInput = {
      host: 'homelab',
      service: 'can.service',
      searchAttributes: true,
      maxHistoryEvents: 40,
    };
    await client.workflow.signalWithStart(WORKFLOW_TYPE, {
      workflowId: workflowIdFor('homelab', 'can.service'),
      taskQueue: CONTROL_TASK_QUEUE,
      args: [input],
      signal: alertFiringSignal.name,
      signalArgs: [{ alertnames: ['ServiceStalled'] }],
    });
    await until('can.service', 'validating', (s) => s.phase === 'validating');
    await env.sleep('10s');
    // Time may run on between polls here (other workflows' timers): wait for facts, not exact steps.
    await until('can.service', 'a failed attempt', (s) => s.consecutiveFailures >= 1);
    await env.sleep('61s');
    await until('can.service', 'failed attempts in a later run', (s) => s.consecutiveFailures >= 2 && s.run >= 1);
    const resumed = (await handle('can.service').describe()).runId;
    await env.sleep('2m');
    await until('can.service', 'escalated in the new run', (s) => s.phase === 'escalated');
    keep('can.service', 'paths-continue-as-new-resumed.json', 'homelab', resumed);
    keep('can.service', 'paths-continue-as-new-escalated.json');

    for (const [service, host, file, runId] of recorded) {
      const history = await client.workflow.getHandle(workflowIdFor(host, service), runId).fetchHistory();
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
