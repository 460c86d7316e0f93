// How an entity workflow's reports reach the fleet coordinator (issue 12, target 4). In an alert storm
// each new incident's first workflow task reported `opened` by a local activity (a signal-with-start
// on the one coordinator, serialized by the server: ~750 ms a call), holding one of the worker's task
// slots the whole time. Now the entity signals the running coordinator itself (a workflow command:
// no slot is held while the server delivers it), and falls back to the signal-with-start when the
// coordinator is not running. Either way each report arrives exactly once.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultPayloadConverter, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { breakerStatus } from '../../src/client/breaker';
import { signalWithStartService } from '../../src/client/signals';
import type { Config } from '../../src/config/config';
import { alertFiringSignal, alertResolvedSignal, stateQuery, workflowIdFor } from '../../src/workflows/definitions';
import {
  fleetReportSignal,
  FLEET_TASK_QUEUE,
  FLEET_WORKFLOW_ID,
  FLEET_WORKFLOW_TYPE,
  type FleetReport,
  type FleetWorkflowInput,
} from '../../src/workflows/fleet-definitions';
import { testConfig, tempDir } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { startWorkers, timeSkippingEnv, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

type Event = temporal.api.history.v1.IHistoryEvent;

function reportsConfig(dir: string): Config {
  return testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
policy: { validationWindow: 30m }
fleet:
  breaker: { fleet: { maxOpenIncidents: 1000, maxOpenShare: 1 }, host: { maxOpenIncidents: 1000, maxOpenShare: 1 } }
services:
${Array.from({ length: 6 }, (_, i) => `  - { name: s${i}.service, host: h }`).join('\n')}
`,
    dir,
  );
}

/** The fleet reports in the coordinator's current run, in arrival order. */
async function reportsOf(env: TestWorkflowEnvironment): Promise<FleetReport[]> {
  const history = await env.client.workflow.getHandle(FLEET_WORKFLOW_ID).fetchHistory();
  return (history.events ?? []).flatMap((e: Event) => {
    const a = e.workflowExecutionSignaledEventAttributes;
    if (a?.signalName !== fleetReportSignal.name) return [];
    return [defaultPayloadConverter.fromPayload<FleetReport>(a.input!.payloads![0])];
  });
}

/**
 * How an entity sent its reports, from its own history: signals it sent the coordinator (delivered or
 * failed, by report kind) and its notifyFleet local activities (the signal-with-start).
 */
async function sentBy(env: TestWorkflowEnvironment, svc: string) {
  const events = (await env.client.workflow.getHandle(workflowIdFor('h', svc)).fetchHistory()).events ?? [];
  const initiated = new Map<string, string>();
  const out = { delivered: [] as string[], failed: [] as string[], localActivities: 0 };
  for (const e of events) {
    const i = e.signalExternalWorkflowExecutionInitiatedEventAttributes;
    if (i?.signalName === fleetReportSignal.name) {
      initiated.set(String(e.eventId), defaultPayloadConverter.fromPayload<FleetReport>(i.input!.payloads![0]).kind);
    }
    const done = e.externalWorkflowExecutionSignaledEventAttributes;
    if (done) out.delivered.push(initiated.get(String(done.initiatedEventId))!);
    const failed = e.signalExternalWorkflowExecutionFailedEventAttributes;
    if (failed) out.failed.push(initiated.get(String(failed.initiatedEventId))!);
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName === 'core_local_activity') {
      const data = defaultPayloadConverter.fromPayload<{ activity_type?: string }>(marker.details!.data.payloads![0]);
      if (data.activity_type === 'notifyFleet') out.localActivities++;
    }
  }
  return out;
}

const ofKind = (rs: FleetReport[], kind: FleetReport['kind'], service: string) =>
  rs.filter((r) => r.kind === kind && r.service === service);

describe('entity reports to the fleet coordinator (time-skipping server)', () => {
  let env: TestWorkflowEnvironment;
  let config: Config;
  let workers: RunningWorkers;
  const fake = new FakeManager();
  before(async () => {
    config = reportsConfig(tempDir());
    env = await timeSkippingEnv();
    workers = await startWorkers(env, config, { hosts: ['h'], managers: () => fake });
  });
  after(async () => {
    await workers?.shutdown();
    await env?.teardown();
  });

  const fire = (svc: string) =>
    signalWithStartService(env.client, config, 'h', svc, alertFiringSignal, { alertnames: ['ServiceDown'] });
  const validating = (svc: string) =>
    waitFor(
      async () =>
        (await env.client.workflow.getHandle(workflowIdFor('h', svc)).query(stateQuery)).phase === 'validating',
      { what: `${svc} validating`, timeoutMs: 60_000 },
    );
  const counted = (n: number) =>
    waitFor(async () => (await breakerStatus(env.client, 10_000))?.openIncidents === n, {
      what: `the coordinator counting ${n} open incidents`,
      timeoutMs: 60_000,
    });

  it('with the coordinator running, each entity signals it itself: opened and closed arrive exactly once', async () => {
    // As the control worker does at startup.
    await env.client.workflow
      .start<(input: FleetWorkflowInput) => Promise<void>>(FLEET_WORKFLOW_TYPE, {
        workflowId: FLEET_WORKFLOW_ID,
        taskQueue: FLEET_TASK_QUEUE,
        args: [{}],
      })
      .catch((err: unknown) => {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      });
    const svcs = ['s0.service', 's1.service', 's2.service'];
    for (const s of svcs) await fire(s);
    for (const s of svcs) await validating(s);
    await counted(3);
    const rs = await reportsOf(env);
    for (const s of svcs) {
      assert.equal(ofKind(rs, 'opened', s).length, 1, `${s}: opened arrived once`);
      assert.deepEqual(await sentBy(env, s), { delivered: ['opened'], failed: [], localActivities: 0 }, s);
    }
    // The incidents close (the alerts resolve during validation): closed, once each, the same way.
    for (const s of svcs) await env.client.workflow.getHandle(workflowIdFor('h', s)).signal(alertResolvedSignal, {});
    await counted(0);
    const all = await reportsOf(env);
    for (const s of svcs) {
      assert.equal(ofKind(all, 'closed', s).length, 1, `${s}: closed arrived once`);
      assert.equal(ofKind(all, 'opened', s).length, 1, `${s}: opened still once`);
      assert.deepEqual(await sentBy(env, s), { delivered: ['opened', 'closed'], failed: [], localActivities: 0 }, s);
    }
  });

  it('with the coordinator not running, the report still arrives (signal-with-start), once', async () => {
    await env.client.workflow.getHandle(FLEET_WORKFLOW_ID).terminate('test: the coordinator is gone');
    const s = 's3.service';
    await fire(s);
    await validating(s);
    await counted(1);
    assert.equal(ofKind(await reportsOf(env), 'opened', s).length, 1, 'opened arrived once');
    // The entity tried the coordinator first, which was not there, then started it with the report.
    assert.deepEqual(await sentBy(env, s), { delivered: [], failed: ['opened'], localActivities: 1 });
    // The restarted coordinator takes the next report the direct way.
    const next = 's4.service';
    await fire(next);
    await validating(next);
    await counted(2);
    assert.equal(ofKind(await reportsOf(env), 'opened', next).length, 1);
    assert.deepEqual(await sentBy(env, next), { delivered: ['opened'], failed: [], localActivities: 0 });
  });
});
