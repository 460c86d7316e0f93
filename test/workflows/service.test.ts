// The entity workflow on the real time-skipping test server: every policy path of the core issue.
// Restarts go through the real host activities with an in-memory service manager (the workflow's
// decisions are the subject here; real systemd is in test/integration).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Config } from '../../src/config/config';
import { signalWithStartService } from '../../src/client/signals';
import {
  alertFiringSignal,
  SA_FAILURES,
  SA_PHASE,
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
import { testConfig, tempDir } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { startWorkers, timeSkippingEnv, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';
import { WebhookSink } from '../helpers/webhook-sink';

let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let sink: WebhookSink;
let config: Config;
let client: Client;
const fake = new FakeManager();
const dir = tempDir();

const fast = '{ validationWindow: 10s }';

before(async () => {
  sink = await WebhookSink.start();
  config = testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
escalation: { webhooks: [ { url: "${sink.url}" } ] }
policy: { validationWindow: 2m, cooldown: 60s, maxRestartsPerHour: 3, maxConsecutiveFailures: 2, verifyTimeout: 5s, verifyStableFor: 0s, hostTimeout: 2s }
services:
  - { name: resolve.service, host: h1 }
  - { name: stall.service, host: h1 }
  - { name: dup.service, host: h1 }
  - { name: cooldown.service, host: h1, policy: ${fast} }
  - { name: budget.service, host: h1, policy: ${fast} }
  - { name: failing.service, host: h1, policy: ${fast} }
  - { name: approval.service, host: h1, policy: { mode: approval } }
  - { name: dryrun.service, host: h1, policy: { mode: dry-run } }
  - { name: paused.service, host: h1 }
  - { name: ghost.service, host: ghost, policy: { validationWindow: 10s, hostTimeout: 1s } }
  - { name: can.service, host: h1, policy: ${fast} }
  - { name: webhook-down.service, host: h1, policy: { mode: approval, validationWindow: 10s } }
  - { name: exhaust-probe.service, host: h1, policy: { validationWindow: 10s, maxRestartsPerHour: 1 } }
${[0, 1, 2, 3, 4].map((i) => `  - { name: exhaust-can-${i}.service, host: h1, policy: { validationWindow: 10s, maxRestartsPerHour: 1 } }`).join('\n')}
`,
    dir,
  );
  env = await timeSkippingEnv();
  client = env.client;
  workers = await startWorkers(env, config, { hosts: ['h1'], managers: () => fake });
});

after(async () => {
  await workers?.shutdown();
  await env?.teardown();
  await sink?.close();
});

const handle = (service: string, host = 'h1') => client.workflow.getHandle(workflowIdFor(host, service));
// Every read has a deadline: a query the test server never answers must fail (and be retried by the
// waits) rather than hang the test.
const state = (service: string, host = 'h1'): Promise<ServiceStateView> =>
  client.connection.withDeadline(Date.now() + 10_000, () => handle(service, host).query(stateQuery));

/** The workflow's run and search attributes, read by describe (no workflow task, unlike a query). */
async function untilIndexed(
  service: string,
  what: string,
  pred: (d: { runId: string; phase?: string; failures: number }) => boolean,
) {
  return waitFor(
    async () => {
      const d = await client.connection.withDeadline(Date.now() + 10_000, () => handle(service).describe());
      const v = {
        runId: d.runId,
        phase: d.typedSearchAttributes.get(SA_PHASE),
        failures: d.typedSearchAttributes.get(SA_FAILURES) ?? 0,
      };
      return pred(v) ? v : null;
    },
    { what: `${service}: ${what}`, timeoutMs: 30_000 },
  );
}

function fire(service: string, host = 'h1', alertnames = ['ServiceStalled']) {
  return signalWithStartService(client, config, host, service, alertFiringSignal, { alertnames });
}

async function until(service: string, what: string, pred: (s: ServiceStateView) => boolean, host = 'h1') {
  return waitFor(
    async () => {
      const s = await state(service, host);
      return pred(s) ? s : null;
    },
    { what: `${service}: ${what}`, timeoutMs: 30_000 },
  );
}

function auditLines(service: string): { event: string; decision: string; reason: string }[] {
  return readFileSync(config.audit.file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.service === service);
}

const escalations = (service: string, event?: string) =>
  sink.events().filter((e) => e.service === service && (!event || e.event === event));

describe('selfhealService workflow (time-skipping server)', () => {
  it('cancels the remediation when the alert resolves inside the validation window', async () => {
    const svc = 'resolve.service';
    await fire(svc);
    await until(svc, 'validating', (s) => s.phase === 'validating');
    await env.sleep('30s');
    await handle(svc).signal(alertResolvedSignal, {});
    await until(svc, 'back to idle', (s) => s.phase === 'idle' && s.totals.incidents === 1);
    await env.sleep('3m');
    const s = await state(svc);
    assert.equal(fake.restartsOf(svc), 0);
    assert.equal(s.totals.restarts, 0);
    assert.ok(auditLines(svc).some((l) => l.event === 'validation-cancelled' && l.decision === 'no-restart'));
  });

  it('restarts once a stall is confirmed after the window, and verifies it', async () => {
    const svc = 'stall.service';
    await fire(svc);
    const v = await until(svc, 'validating', (s) => s.phase === 'validating');
    assert.equal(v.status, 'HEALING');
    await env.sleep('1m');
    assert.equal(fake.restartsOf(svc), 0, 'no restart before the validation window ends');
    await env.sleep('61s');
    const s = await until(svc, 'restarted and idle', (x) => x.phase === 'idle' && x.totals.restarts === 1);
    assert.equal(fake.restartsOf(svc), 1);
    assert.equal(s.recentAttempts.length, 1);
    assert.equal(s.recentAttempts[0].result, 'success');
    assert.equal(s.recentAttempts[0].reason, 'verified');
    assert.equal(s.status, 'OK');
    const events = auditLines(svc).map((l) => l.event);
    for (const e of ['incident-opened', 'recheck', 'restart', 'attempt-finished', 'incident-closed']) {
      assert.ok(events.includes(e), `audit has ${e}: ${events.join(',')}`);
    }
  });

  it('turns duplicate alertFiring signals during an incident into one restart', async () => {
    const svc = 'dup.service';
    await fire(svc);
    await until(svc, 'validating', (s) => s.phase === 'validating');
    for (let i = 0; i < 5; i++) await fire(svc);
    const v = await until(svc, 'duplicates counted', (s) => s.incident?.duplicateAlerts === 5);
    assert.equal(v.totals.incidents, 1);
    await env.sleep('2m');
    await until(svc, 'restarted', (s) => s.phase === 'idle' && s.totals.restarts === 1);
    await env.sleep('5m');
    assert.equal(fake.restartsOf(svc), 1);
    assert.equal((await state(svc)).totals.incidents, 1);
  });

  it('respects the cooldown between restarts', async () => {
    const svc = 'cooldown.service';
    await fire(svc);
    await until(svc, 'validating', (s) => s.phase === 'validating');
    await env.sleep('10s');
    await until(svc, 'first restart', (s) => s.phase === 'idle' && s.totals.restarts === 1);
    await fire(svc);
    await until(svc, 'validating again', (s) => s.phase === 'validating');
    await env.sleep('10s');
    const c = await until(svc, 'cooldown', (s) => s.phase === 'cooldown');
    assert.equal(fake.restartsOf(svc), 1, 'no restart during cooldown');
    assert.ok(c.cooldownUntil);
    await env.sleep('61s');
    const s = await until(svc, 'second restart', (x) => x.phase === 'idle' && x.totals.restarts === 2);
    const [first, second] = s.restartTimes.map((t) => Date.parse(t));
    assert.ok(second - first >= 60_000, `restarts ${second - first} ms apart`);
    assert.ok(auditLines(svc).some((l) => l.decision === 'wait-cooldown'));
  });

  it('refuses the 4th restart inside an hour, escalates once, and restarts when the budget frees', async () => {
    const svc = 'budget.service';
    for (let n = 1; n <= 3; n++) {
      await fire(svc);
      await until(svc, `incident ${n} validating`, (s) => s.phase === 'validating');
      await env.sleep('10s');
      await until(svc, `restart ${n}`, (s) => s.phase === 'idle' && s.totals.restarts === n);
      await env.sleep('61s');
    }
    await fire(svc);
    await until(svc, 'incident 4 validating', (s) => s.phase === 'validating');
    await env.sleep('10s');
    const ex = await until(svc, 'exhausted', (s) => s.phase === 'exhausted');
    assert.equal(ex.status, 'CRITICAL');
    assert.equal(ex.restartsLastHour, 3);
    assert.equal(fake.restartsOf(svc), 3);
    await waitFor(() => escalations(svc, 'SelfHealingExhausted').length === 1, { what: 'exhaustion escalation' });
    const esc = escalations(svc, 'SelfHealingExhausted')[0];
    assert.equal(esc.host, 'h1');
    assert.equal(esc.workflowId, workflowIdFor('h1', svc));
    assert.equal(esc.restartsLastHour, 3);
    assert.match(String(esc.message), /budget/);
    // More alerts while exhausted: still no restart, still one escalation.
    await fire(svc);
    await env.sleep('5m');
    assert.equal(fake.restartsOf(svc), 3);
    assert.ok(ex.budgetFreesAt);
    const frees = Date.parse(ex.budgetFreesAt!);
    const now = Date.parse((await state(svc)).incident!.openedAt);
    await env.sleep(Math.max(0, frees - now));
    const s = await until(svc, 'fourth restart after the hour', (x) => x.totals.restarts === 4 && x.phase === 'idle');
    assert.equal(fake.restartsOf(svc), 4);
    assert.equal(s.restartsLastHour <= 3, true);
    assert.equal(escalations(svc, 'SelfHealingExhausted').length, 1);
  });

  it('escalates ConsecutiveFailures after 3 failed attempts; approve gives one more attempt; skip goes back to watching', async () => {
    const svc = 'failing.service';
    fake.set(svc, { failsOnStart: true });
    await fire(svc);
    await until(svc, 'validating', (s) => s.phase === 'validating');
    await env.sleep('10s');
    await until(svc, 'attempt 1 failed', (s) => s.consecutiveFailures === 1 && s.phase === 'cooldown');
    await env.sleep('61s');
    await until(svc, 'attempt 2 failed', (s) => s.consecutiveFailures === 2 && s.phase === 'cooldown');
    assert.equal(escalations(svc).length, 0, 'no escalation at 2 failures');
    await env.sleep('61s');
    const e = await until(svc, 'escalated', (s) => s.phase === 'escalated');
    assert.equal(e.consecutiveFailures, 3);
    assert.equal(e.status, 'CRITICAL');
    assert.equal(fake.restartsOf(svc), 3);
    await waitFor(() => escalations(svc, 'ConsecutiveFailures').length === 1, {
      what: 'ConsecutiveFailures escalation',
    });
    assert.equal(escalations(svc, 'ConsecutiveFailures')[0].consecutiveFailures, 3);
    // Escalated means waiting for a human: no more restarts on its own.
    await env.sleep('2h');
    assert.equal(fake.restartsOf(svc), 3);

    await handle(svc).signal(approveSignal, { by: 'test', reason: 'try once more' });
    await until(svc, 'approved attempt failed', (s) => s.consecutiveFailures === 4 && s.phase === 'escalated');
    assert.equal(fake.restartsOf(svc), 4, 'approve gave exactly one more attempt');
    const last = (await state(svc)).recentAttempts.at(-1)!;
    assert.equal(last.approved, true);
    await waitFor(() => escalations(svc, 'ConsecutiveFailures').length === 2, { what: 'second escalation' });

    await handle(svc).signal(skipSignal, { by: 'test' });
    const s = await until(svc, 'back to watching', (x) => x.phase === 'idle');
    assert.equal(s.consecutiveFailures, 0);
    assert.equal(s.status, 'OK');
    await env.sleep('10m');
    assert.equal(fake.restartsOf(svc), 4);
    const audit = auditLines(svc);
    assert.ok(audit.some((l) => l.event === 'approved'));
    assert.ok(audit.some((l) => l.event === 'skipped'));
  });

  it('in approval mode waits for approve before restarting', async () => {
    const svc = 'approval.service';
    await fire(svc);
    await until(svc, 'validating', (s) => s.phase === 'validating');
    await env.sleep('2m');
    const a = await until(svc, 'awaiting approval', (s) => s.phase === 'awaiting-approval');
    assert.equal(a.canApprove, true);
    await waitFor(() => escalations(svc, 'ApprovalRequired').length === 1, { what: 'approval request' });
    await env.sleep('30m');
    assert.equal(fake.restartsOf(svc), 0);
    await handle(svc).signal(approveSignal, { by: 'test' });
    await until(svc, 'restarted', (s) => s.phase === 'idle' && s.totals.restarts === 1);
    assert.equal(fake.restartsOf(svc), 1);
  });

  it('in dry-run mode decides and logs but never restarts', async () => {
    const svc = 'dryrun.service';
    await fire(svc);
    await until(svc, 'validating', (s) => s.phase === 'validating');
    await env.sleep('2m');
    await until(svc, 'idle after dry-run', (s) => s.phase === 'idle' && s.totals.incidents === 1);
    await handle(svc).signal(approveSignal, {});
    await fire(svc);
    await env.sleep('3m');
    await until(svc, 'second dry-run done', (s) => s.phase === 'idle' && s.totals.incidents === 2);
    assert.equal(fake.restartsOf(svc), 0);
    assert.equal(fake.calls.filter((c) => c.unit === svc && c.op === 'restart').length, 0);
    assert.ok(auditLines(svc).filter((l) => l.decision === 'would-restart').length >= 2);
  });

  it('holds remediation while paused, and acts on resume or when the pause expires', async () => {
    const svc = 'paused.service';
    await signalWithStartService(client, config, 'h1', svc, pauseSignal, { by: 'test', reason: 'maintenance' });
    const p = await until(svc, 'paused', (s) => s.paused && s.phase === 'paused');
    assert.equal(p.status, 'OK');
    await fire(svc);
    await until(svc, 'validating', (s) => s.phase === 'validating');
    await env.sleep('2m');
    await until(svc, 'held by the pause', (s) => s.phase === 'paused' && s.incident !== null);
    await env.sleep('1h');
    assert.equal(fake.restartsOf(svc), 0);
    await handle(svc).signal(resumeSignal, { by: 'test' });
    await until(svc, 'restarted after resume', (s) => s.phase === 'idle' && s.totals.restarts === 1);

    // A timed pause ends by itself.
    const until5m = new Date(Date.parse((await state(svc)).restartTimes[0]) + 10 * 60_000).toISOString();
    await handle(svc).signal(pauseSignal, { until: until5m });
    await until(svc, 'paused again', (s) => s.paused);
    await fire(svc);
    await until(svc, 'validating', (s) => s.phase === 'validating');
    await env.sleep('2m');
    await until(svc, 'held', (s) => s.phase === 'paused' && s.incident !== null);
    assert.equal(fake.restartsOf(svc), 1);
    await env.sleep('10m');
    await until(svc, 'restarted after expiry', (s) => s.totals.restarts === 2 && !s.paused);
    assert.equal(fake.restartsOf(svc), 2);
  });

  it('treats a host without a polling worker as a failed attempt (host-unreachable) and escalates', async () => {
    const svc = 'ghost.service';
    await fire(svc, 'ghost');
    await until(svc, 'validating', (s) => s.phase === 'validating', 'ghost');
    await env.sleep('10s');
    const s = await until(svc, 'first attempt failed', (x) => x.consecutiveFailures === 1, 'ghost');
    assert.equal(s.recentAttempts[0].reason, 'host-unreachable');
    assert.equal(s.recentAttempts[0].restarted, false);
    assert.equal(s.restartsLastHour, 0, 'nothing restarted, nothing taken from the budget');
    await waitFor(() => escalations(svc, 'HostUnreachable').length === 1, { what: 'HostUnreachable escalation' });
    assert.equal(escalations(svc, 'HostUnreachable')[0].host, 'ghost');
    for (let n = 2; n <= 3; n++) {
      await until(svc, 'cooldown', (x) => x.phase === 'cooldown', 'ghost');
      await env.sleep('61s');
      await until(svc, `attempt ${n}`, (x) => x.consecutiveFailures === n, 'ghost');
    }
    await until(svc, 'escalated', (x) => x.phase === 'escalated', 'ghost');
    await waitFor(() => escalations(svc, 'ConsecutiveFailures').length === 1, { what: 'ConsecutiveFailures' });
    assert.equal(escalations(svc, 'HostUnreachable').length, 1, 'HostUnreachable once per incident');
  });

  it('keeps retrying an escalation until the webhook takes it, without blocking the workflow', async () => {
    const svc = 'webhook-down.service';
    sink.status = 503;
    try {
      await fire(svc);
      await until(svc, 'validating', (s) => s.phase === 'validating');
      await env.sleep('10s');
      await until(svc, 'awaiting approval', (s) => s.phase === 'awaiting-approval');
      await env.sleep('2m'); // several delivery attempts fail meanwhile
      assert.equal(escalations(svc).length, 0);
      // The workflow is not stuck behind the delivery: it still takes decisions.
      await handle(svc).signal(approveSignal, { by: 'test' });
      await until(
        svc,
        'restarted while the escalation is undelivered',
        (s) => s.totals.restarts === 1 && s.phase === 'idle',
      );
    } finally {
      sink.status = 200;
    }
    await env.sleep('10m');
    await waitFor(() => escalations(svc, 'ApprovalRequired').length === 1, {
      what: 'delivered once the webhook is back',
    });
    assert.match(String(escalations(svc)[0].id), /^selfheal\/h1\/webhook-down\.service\/inc-1\/ApprovalRequired\/\d+$/);
  });

  it('shrugs off malformed signal payloads (e.g. typed by hand in the Temporal UI)', async () => {
    const svc = 'resolve.service';
    const h = handle(svc);
    await h.signal(alertFiringSignal.name, null);
    await h.signal(alertFiringSignal.name, 'not an object');
    await h.signal(alertFiringSignal.name, { alertnames: 'ServiceDown', summary: 42 });
    await h.signal(pauseSignal.name, { until: 12, by: ['x'] });
    await h.signal(approveSignal.name, [1, 2, 3]);
    const s = await until(svc, 'still answering, incident opened', (x) => x.incident !== null && x.paused);
    assert.deepEqual(s.firingAlerts, ['manual']);
    assert.equal(s.pausedUntil, null, 'an invalid until means until resumed');
    await h.signal(resumeSignal, {});
    await h.signal(skipSignal, {});
    await until(svc, 'back to idle', (x) => x.phase === 'idle' && !x.paused);
  });

  // A deadline: it once hung for minutes on the time-skipping server (see the session-3 note).
  it('continues-as-new with its budget and failure counts intact', { timeout: 300_000 }, async () => {
    const svc = 'can.service';
    fake.set(svc, { failsOnStart: true });
    const input: ServiceWorkflowInput = { host: 'h1', service: svc, searchAttributes: true, maxHistoryEvents: 40 };
    const h = await client.workflow.signalWithStart(WORKFLOW_TYPE, {
      workflowId: workflowIdFor('h1', svc),
      taskQueue: CONTROL_TASK_QUEUE,
      args: [input],
      signal: alertFiringSignal.name,
      signalArgs: [{ alertnames: ['ServiceStalled'] }],
    });
    const firstRun = (await h.describe()).runId;
    // Waits read the search attributes (describe), not the state query: on the time-skipping server a
    // query that reaches a run as it continues-as-new is never answered, and the server then keeps time
    // skipping locked, so every later sleep runs in real time (this test once hung for 9 minutes).
    await untilIndexed(svc, 'validating', (d) => d.phase === 'validating');
    await env.sleep('10s');
    // Facts, not exact steps: on a busy machine the test server's clock can run past a cooldown
    // between two polls, so an intermediate phase may never be seen.
    await untilIndexed(svc, 'a failed attempt', (d) => d.failures >= 1);
    await env.sleep('61s');
    await untilIndexed(svc, 'failed attempts in a later run', (d) => d.failures >= 2 && d.runId !== firstRun);
    await env.sleep('2m');
    await untilIndexed(svc, 'escalated', (d) => d.phase === 'escalated');
    const s3 = await until(svc, 'escalated in the new run', (s) => s.phase === 'escalated');
    assert.equal(s3.consecutiveFailures, 3, 'failure count carried over');
    assert.equal(s3.restartsLastHour, 3, 'budget carried over: every failed restart counts in the later run');
    assert.ok(s3.run >= 1, 'a later run');
    assert.equal(fake.restartsOf(svc), 3);
    await waitFor(() => escalations(svc, 'ConsecutiveFailures').length === 1, {
      what: 'escalation after continue-as-new',
    });
  });

  it('leaves no activity behind when it continues-as-new right after escalating', { timeout: 300_000 }, async () => {
    // Incident 1 restarts (budget 1 an hour); incident 2 is refused by the budget and escalates
    // SelfHealingExhausted. The probe run finds the workflow task that schedules that escalation; the
    // second service's run is told to continue-as-new from exactly that task on (maxHistoryEvents).
    const scenario = async (svc: string, maxHistoryEvents: number) => {
      const input: ServiceWorkflowInput = { host: 'h1', service: svc, searchAttributes: true, maxHistoryEvents };
      const start = () =>
        client.workflow.signalWithStart(WORKFLOW_TYPE, {
          workflowId: workflowIdFor('h1', svc),
          taskQueue: CONTROL_TASK_QUEUE,
          args: [input],
          signal: alertFiringSignal.name,
          signalArgs: [{ alertnames: ['ServiceStalled'] }],
        });
      const h = await start();
      await until(svc, 'incident 1 validating', (s) => s.phase === 'validating');
      await env.sleep('10s');
      await until(svc, 'restart 1', (s) => s.phase === 'idle' && s.totals.restarts === 1);
      await env.sleep('61s');
      await start();
      await until(svc, 'incident 2 validating', (s) => s.phase === 'validating');
      await env.sleep('10s');
      await until(svc, 'exhausted', (s) => s.phase === 'exhausted');
      await waitFor(() => escalations(svc, 'SelfHealingExhausted').length >= 1, { what: `${svc}: escalation` });
      return h;
    };
    const events = async (svc: string, runId?: string) =>
      (await client.workflow.getHandle(workflowIdFor('h1', svc), runId).fetchHistory()).events ?? [];

    await scenario('exhaust-probe.service', 100_000);
    const probe = await events('exhaust-probe.service');
    const escalate = probe.findIndex((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'escalate');
    assert.ok(escalate > 0, 'the probe scheduled the escalation');
    const taskStarted = probe
      .slice(0, escalate)
      .reverse()
      .find((e) => e.workflowTaskStartedEventAttributes);
    const historyLength = Number(taskStarted!.eventId);

    // The same history can take a task more or less (when an answer from the fleet coordinator lands),
    // so runs with limits around the probe's: one continues-as-new in the escalating task.
    let escalatedThenContinued = 0;
    for (const [i, limit] of [
      historyLength - 2,
      historyLength - 1,
      historyLength,
      historyLength + 1,
      historyLength + 2,
    ].entries()) {
      const svc = `exhaust-can-${i}.service`;
      await scenario(svc, limit);
      await env.sleep('5s');
      const ids = escalations(svc, 'SelfHealingExhausted').map((e) => e.id);
      assert.equal(ids.length, 1, `${svc}: the escalation went out once: ${ids.join(', ')}`);
      const latest = await events(svc);
      const prev = latest[0].workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
      if (!prev) continue;
      const run = await events(svc, prev);
      const scheduled = run.filter((e) => e.activityTaskScheduledEventAttributes);
      const finished = new Set(
        run
          .map(
            (e) =>
              e.activityTaskCompletedEventAttributes ??
              e.activityTaskFailedEventAttributes ??
              e.activityTaskTimedOutEventAttributes ??
              e.activityTaskCanceledEventAttributes,
          )
          .filter((a) => a != null)
          .map((a) => Number(a!.scheduledEventId)),
      );
      assert.deepEqual(
        scheduled
          .filter((e) => !finished.has(Number(e.eventId)))
          .map((e) => e.activityTaskScheduledEventAttributes!.activityType?.name),
        [],
        `${svc} (limit ${limit}): every activity of the run finished before it continued as new`,
      );
      if (scheduled.some((e) => e.activityTaskScheduledEventAttributes!.activityType?.name === 'escalate'))
        escalatedThenContinued++;
    }
    assert.ok(escalatedThenContinued >= 1, 'a run continued as new right after escalating');
  });
});
