// The Temporal UI tells an incident's story (issue 9): a summary per workflow, the current details
// (phase, incident, what it waits for, what approve / skip would do), and a summary on every timer
// and host activity. Read back from the real dev server: the history's user metadata and the
// workflow's metadata query, which is what the UI shows.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { temporal } from '@temporalio/proto';
import type { Config } from '../../src/config/config';
import { signalWithStartService } from '../../src/client/signals';
import { alertFiringSignal, stateQuery, workflowIdFor } from '../../src/workflows/definitions';
import { testConfig, tempDir } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { devServerEnv, startWorkers, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let config: Config;
const fake = new FakeManager();
const dir = tempDir();
const EventType = temporal.api.enums.v1.EventType;

before(async () => {
  env = await devServerEnv();
  config = testConfig(
    `
temporal: { address: "${env.address}", dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
policy: { validationWindow: 2s, cooldown: 1s, verifyTimeout: 5s, verifyStableFor: 0s }
services:
  - { name: shown.service, host: h1 }
  - { name: waiting.service, host: h1, policy: { validationWindow: 1h } }
`,
    dir,
  );
  workers = await startWorkers(env, config, { hosts: ['h1'], managers: () => fake });
});

after(async () => {
  await workers?.shutdown();
  await env?.teardown();
});

const text = (p: temporal.api.common.v1.IPayload | null | undefined) =>
  p?.data ? JSON.parse(Buffer.from(p.data).toString('utf8')) : undefined;

describe('what the Temporal UI shows (dev server)', () => {
  it('labels the workflow, its timers and its host activities', async () => {
    const h = await signalWithStartService(env.client, config, 'h1', 'shown.service', alertFiringSignal, {
      alertnames: ['ServiceStalled'],
    });
    await waitFor(async () => (await h.query(stateQuery)).totals.restarts === 1, {
      what: 'one restart',
      timeoutMs: 30_000,
    });
    const d = await h.describe();
    assert.equal(await d.staticSummary(), 'shown.service on h1');
    assert.match((await d.staticDetails()) ?? '', /selfheal approve\|skip\|pause\|resume shown\.service --host h1/);
    const events = (await h.fetchHistory()).events ?? [];
    const summaries = (type: number) =>
      events.filter((e) => e.eventType === type).map((e) => text(e.userMetadata?.summary) as string | undefined);
    assert.ok(summaries(EventType.EVENT_TYPE_TIMER_STARTED).includes('validation window 2s'), 'the window timer');
    const activities = summaries(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED);
    assert.ok(activities.includes('re-check shown.service'), JSON.stringify(activities));
    assert.ok(activities.includes('restart shown.service, attempt inc-1-1'), JSON.stringify(activities));
    assert.ok(
      activities.some((s) => s?.startsWith('verify shown.service')),
      JSON.stringify(activities),
    );
  });

  it('says in its current details what the incident waits for and what a human can do', async () => {
    const h = await signalWithStartService(env.client, config, 'h1', 'waiting.service', alertFiringSignal, {
      alertnames: ['ServiceStalled'],
    });
    const details = await waitFor(
      async () => {
        const m = (await h.query('__temporal_workflow_metadata')) as { currentDetails?: string };
        return m.currentDetails?.includes('validation window') ? m.currentDetails : null;
      },
      { what: 'current details', timeoutMs: 20_000 },
    );
    assert.match(details, /\*\*waiting\.service\*\* on \*\*h1\*\*: HEALING, phase `validating`/);
    assert.match(details, /Incident inc-1 opened/);
    assert.match(details, /Now: waits out the validation window until \d{4}-/);
    assert.match(details, /`approve`: restart once now/);
    assert.match(details, /`skip`: drop this incident/);
    assert.equal(h.workflowId, workflowIdFor('h1', 'waiting.service'));
  });
});
