// Records a real history and forges from it what a live worker with a stale clock saw: a timed
// pause whose timer fires in the same activation as an alert that wakes the wait.
//
// A service is paused for 3 s; its timer fires while no worker runs; an alert arrives in the same
// pending workflow task; then workers start (a cache miss: the whole history is replayed, then the
// task with both events runs). Signals come first in an activation, so the wait's condition answers
// "woken", not "timed out", and the workflow then asks whether the pause has ended. Code that asks
// the workflow clock answers "no" when the clock reads the task before (see PATCH_TIMER_ENDS_WAIT in
// src/workflows/state.ts) and treats the alert as arriving during the pause, where a replay opens
// an incident. The forged copy sets that task's start time to the previous task's start, as such a
// worker read it; the current code must replay it (the fired timer counts however the wait woke).
// Run: npx tsx test/histories/record-wake-with-timer.ts
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { signalWithStartService } from '../../src/client/signals';
import {
  alertFiringSignal,
  pauseSignal,
  stateQuery,
  workflowIdFor,
  type ServiceStateView,
} from '../../src/workflows/definitions';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { devServerEnv, startWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

interface Event {
  eventId: string;
  eventTime: string;
  eventType: string;
}

async function main() {
  const dir = tempDir();
  const config = testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
policy: { verifyTimeout: 5s, verifyStableFor: 0s, hostTimeout: 2s }
services:
  - { name: wake.service, host: homelab, policy: { validationWindow: 2s } }
`,
    dir,
  );
  const fake = new FakeManager();
  const env = await devServerEnv();
  const handle = env.client.workflow.getHandle(workflowIdFor('homelab', 'wake.service'));
  const until = (what: string, pred: (s: ServiceStateView) => boolean) =>
    waitFor(async () => (pred(await handle.query(stateQuery)) ? true : null), { what, timeoutMs: 30_000 });
  try {
    let workers = await startWorkers(env, config, { hosts: ['homelab'], managers: () => fake });
    await signalWithStartService(env.client, config, 'homelab', 'wake.service', pauseSignal, {
      by: 'record-wake-with-timer',
      until: new Date(Date.now() + 3_000).toISOString(),
    });
    await until('paused', (s) => s.phase === 'paused');
    await workers.shutdown();
    await new Promise((r) => setTimeout(r, 6_000)); // the pause's timer fires; no worker takes the task
    await handle.signal(alertFiringSignal, { alertnames: ['ServiceStalled'] });
    workers = await startWorkers(env, config, { hosts: ['homelab'], managers: () => fake });
    await until('restarted and closed', (s) => s.phase === 'idle' && s.totals.restarts === 1).catch(async (err) => {
      const events = (await handle.fetchHistory()).events ?? [];
      for (const e of events.slice(-15)) console.error(e.eventId, e.eventType, JSON.stringify(e.workflowTaskFailedEventAttributes?.failure?.message ?? ''));
      throw err;
    });
    await workers.shutdown();
    const history = await handle.fetchHistory();
    const json = JSON.parse(historyToJSON(history)) as { events: Event[] };
    const fired = json.events.findIndex((e) => e.eventType === 'EVENT_TYPE_TIMER_FIRED');
    const signalled = json.events.findIndex((e, i) => i > fired && e.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED');
    const started = json.events.findIndex((e, i) => i > fired && e.eventType === 'EVENT_TYPE_WORKFLOW_TASK_STARTED');
    if (fired < 0 || signalled < 0 || started < signalled) {
      throw new Error(`the timer and the signal are not in one task: fired ${fired}, signalled ${signalled}, task ${started}`);
    }
    const previous = json.events
      .slice(0, fired)
      .reverse()
      .find((e) => e.eventType === 'EVENT_TYPE_WORKFLOW_TASK_STARTED')!;
    const out = join(__dirname, 'wake-with-timer-stale-clock.json');
    const was = json.events[started].eventTime;
    json.events[started].eventTime = previous.eventTime;
    writeFileSync(out, JSON.stringify(json, null, 2) + '\n');
    console.log(
      `wrote ${out}: ${json.events.length} events; task ${json.events[started].eventId} (timer fired, event ` +
        `${json.events[fired].eventId}; signal, event ${json.events[signalled].eventId}) starts at ${previous.eventTime} (was ${was})`,
    );
  } finally {
    await env.teardown();
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
