// Defects an outside review found in the entity workflow (issue 8), each pinned by the behaviour it
// protects, on the real time-skipping test server with the real host activities over an in-memory
// service manager.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app';
import type { Config } from '../../src/config/config';
import { createMetrics } from '../../src/metrics/metrics';
import { signalWithStartService } from '../../src/client/signals';
import { createHostWorker } from '../../src/worker/workers';
import {
  alertFiringSignal,
  alertResolvedSignal,
  approveSignal,
  MAX_FIRING_ALERTS,
  MAX_INCIDENT_ALERTNAMES,
  stateQuery,
  workflowIdFor,
  type AlertFiringPayload,
  type AlertResolvedPayload,
  type ServiceStateView,
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
let app: FastifyInstance;
const fake = new FakeManager();
const dir = tempDir();
const TOKEN = 'hardening-test-token-0123456789';

before(async () => {
  sink = await WebhookSink.start();
  config = testConfig(
    `
temporal: { dataDir: ${dir} }
api: { token: ${TOKEN}, adminToken: ${TOKEN}-admin }
audit: { file: ${join(dir, 'audit.log')} }
escalation: { webhooks: [ { url: "${sink.url}" } ] }
policy: { validationWindow: 10s, cooldown: 60s, maxRestartsPerHour: 3, maxConsecutiveFailures: 2, verifyTimeout: 5s, verifyStableFor: 0s, hostTimeout: 2s }
services:
  - { name: grouped.service, host: h1 }
  - { name: webhook-grouped.service, host: h1 }
  - { name: crash.service, host: h2 }
  - { name: recreated.service, host: h1 }
  - { name: late-approval.service, host: h1, policy: { mode: approval } }
  - { name: long-name.service, host: h1 }
  - { name: flapping.service, host: h1 }
  - { name: capped.service, host: h1, policy: { validationWindow: 1h } }
`,
    dir,
  );
  env = await timeSkippingEnv();
  client = env.client;
  workers = await startWorkers(env, config, { hosts: ['h1'], managers: () => fake });
  app = await buildApp({ config, client, metrics: createMetrics() });
});

after(async () => {
  await app?.close();
  await workers?.shutdown();
  await env?.teardown();
  await sink?.close();
});

const handle = (service: string, host = 'h1') => client.workflow.getHandle(workflowIdFor(host, service));
const state = (service: string, host = 'h1'): Promise<ServiceStateView> => handle(service, host).query(stateQuery);

function fire(service: string, payload: AlertFiringPayload, host = 'h1') {
  return signalWithStartService(client, config, host, service, alertFiringSignal, payload);
}

function resolve(service: string, payload: AlertResolvedPayload, host = 'h1') {
  return handle(service, host).signal(alertResolvedSignal, payload);
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

const escalations = (service: string, event?: string) =>
  sink.events().filter((e) => e.service === service && (!event || e.event === event));

function alertmanagerAlert(service: string, reason: string, status: 'firing' | 'resolved') {
  return {
    status,
    labels: { alertname: 'ServiceStalled', service, host: 'h1', reason },
    annotations: { summary: `${service} ${reason}` },
    startsAt: '2026-11-30T00:00:00Z',
    fingerprint: `fp-${service}-${reason}`,
  };
}

describe('issue 8 defects in the entity workflow (time-skipping server)', () => {
  it('keeps validating while another alert of the same name still fires when one of them resolves', async () => {
    const svc = 'grouped.service';
    const down = { id: 'fp-down', name: 'ServiceStalled' };
    const inactive = { id: 'fp-unit-inactive', name: 'ServiceStalled' };
    await fire(svc, { alertnames: ['ServiceStalled'], alerts: [down, inactive] });
    await until(svc, 'validating', (s) => s.phase === 'validating');
    // Alertmanager's next notification of the group: {down: resolved, unit-inactive: firing}, with
    // the resolved signal landing last.
    await fire(svc, { alertnames: ['ServiceStalled'], alerts: [inactive] });
    await resolve(svc, { alertnames: ['ServiceStalled'], alerts: [down] });
    const s = await until(svc, 'still validating', (x) => x.phase === 'validating');
    assert.deepEqual(s.firingAlerts, ['ServiceStalled']);
    await env.sleep('11s');
    await until(svc, 'restarted', (x) => x.totals.restarts === 1 && x.phase === 'idle');
    assert.equal(fake.restartsOf(svc), 1);
  });

  it('acts on a grouped webhook notification with one alert resolved and one still firing', async () => {
    const svc = 'webhook-grouped.service';
    const post = (alerts: ReturnType<typeof alertmanagerAlert>[]) =>
      app.inject({
        method: 'POST',
        url: '/selfheal/trigger',
        headers: { authorization: `Bearer ${TOKEN}` },
        payload: { version: '4', status: 'firing', alerts },
      });
    const first = await post([
      alertmanagerAlert(svc, 'down', 'firing'),
      alertmanagerAlert(svc, 'unit-inactive', 'firing'),
    ]);
    assert.equal(first.statusCode, 200, first.body);
    await until(svc, 'validating', (s) => s.phase === 'validating');
    // The firing alert first, so that (sent concurrently) its resolved sibling tends to land last.
    const second = await post([
      alertmanagerAlert(svc, 'unit-inactive', 'firing'),
      alertmanagerAlert(svc, 'down', 'resolved'),
    ]);
    assert.equal(second.statusCode, 200, second.body);
    await env.sleep('11s');
    await until(svc, 'restarted', (x) => x.totals.restarts === 1 && x.phase === 'idle');
    assert.equal(fake.restartsOf(svc), 1);
  });

  it('counts a restart that ran when the host worker died mid-restart and did not come back in time', async () => {
    const svc = 'crash.service';
    const crashing = new FakeManager();
    let hostWorker: Worker | null = null;
    // systemctl restart runs, then the worker is lost before it can report back.
    const restart = crashing.restart.bind(crashing);
    crashing.restart = async (unit: string) => {
      await restart(unit);
      hostWorker?.shutdown();
      throw new Error('host worker lost after systemctl restart');
    };
    hostWorker = await createHostWorker({
      config,
      connection: env.nativeConnection,
      host: 'h2',
      managers: () => crashing,
      pollIntervalMs: 50,
    });
    const run = hostWorker.run();
    try {
      await fire(svc, { alertnames: ['ServiceStalled'] }, 'h2');
      await until(svc, 'validating', (s) => s.phase === 'validating', 'h2');
      await env.sleep('11s');
      const s = await until(svc, 'attempt finished', (x) => x.recentAttempts.length === 1, 'h2');
      assert.equal(crashing.restartsOf(svc), 1, 'the restart ran once');
      assert.equal(s.recentAttempts[0].restarted, true, 'an attempt whose restart may have run is counted');
      assert.equal(s.restartsLastHour, 1, 'and taken from the hourly budget');
      assert.equal(s.totals.restarts, 1);
    } finally {
      if (hostWorker.getState() === 'RUNNING') hostWorker.shutdown();
      await run.catch(() => undefined);
    }
  });

  it('restarts for real after the workflow is terminated and started again', async () => {
    const svc = 'recreated.service';
    fake.stop(svc);
    await fire(svc, { alertnames: ['ServiceStalled'] });
    await until(svc, 'validating', (s) => s.phase === 'validating');
    await env.sleep('11s');
    await until(svc, 'first restart', (s) => s.totals.restarts === 1 && s.phase === 'idle');
    assert.equal(fake.restartsOf(svc), 1);
    await handle(svc).terminate('operator recreated the workflow');
    fake.stop(svc);
    // A new run starts its incident and attempt numbering again; the host must not mistake the new
    // attempt for the old one.
    await fire(svc, { alertnames: ['ServiceStalled'] });
    await until(svc, 'validating in the new run', (s) => s.phase === 'validating');
    await env.sleep('11s');
    const s = await until(
      svc,
      'attempt in the new run',
      (x) => x.recentAttempts.length === 1 && x.phase !== 'verifying',
    );
    assert.equal(fake.restartsOf(svc), 2, 'systemctl restart ran again');
    assert.equal(s.recentAttempts[0].result, 'success');
  });

  it('ignores an approval sent for an incident that has closed', async () => {
    const svc = 'late-approval.service';
    await fire(svc, { alertnames: ['ServiceStalled'] });
    const first = await until(svc, 'validating', (s) => s.phase === 'validating');
    const firstIncident = first.incident!.id;
    await resolve(svc, {});
    await until(svc, 'closed', (s) => s.phase === 'idle');
    await fire(svc, { alertnames: ['ServiceStalled'] });
    const second = await until(svc, 'second incident', (s) => s.phase === 'validating');
    assert.notEqual(second.incident!.id, firstIncident);
    // An approval for the first incident, delivered late.
    await handle(svc).signal(approveSignal, { by: 'test', incidentId: firstIncident });
    await env.sleep('11s');
    await until(svc, 'awaiting approval', (s) => s.phase === 'awaiting-approval');
    await env.sleep('5m');
    assert.equal(fake.restartsOf(svc), 0, 'the late approval did not restart the next incident');
    await handle(svc).signal(approveSignal, { by: 'test', incidentId: second.incident!.id });
    await until(svc, 'restarted on the right approval', (s) => s.totals.restarts === 1 && s.phase === 'idle');
    assert.equal(fake.restartsOf(svc), 1);
  });

  it('clears an alert with a very long name when it resolves', async () => {
    const svc = 'long-name.service';
    const name = `Alert${'x'.repeat(295)}`;
    await fire(svc, { alertnames: [name] });
    await until(svc, 'validating', (s) => s.phase === 'validating');
    await resolve(svc, { alertnames: [name] });
    const s = await until(svc, 'resolved', (x) => x.phase === 'idle');
    assert.deepEqual(s.firingAlerts, []);
    assert.equal(fake.restartsOf(svc), 0);
  });

  it('escalates ConsecutiveFailures for a flapping service that recovers on its own between failed restarts', async () => {
    const svc = 'flapping.service';
    fake.set(svc, { failsOnStart: true });
    for (let n = 1; n <= 3; n++) {
      await fire(svc, { alertnames: ['ServiceStalled'] });
      await until(svc, `incident ${n} validating`, (s) => s.phase === 'validating');
      await env.sleep('11s');
      const s = await until(svc, `attempt ${n} failed`, (x) => x.totals.failures === n && x.phase !== 'verifying');
      assert.equal(s.consecutiveFailures, n, `failures after attempt ${n}`);
      if (n < 3) {
        // It comes back by itself before the next try: the alert resolves while we wait.
        await resolve(svc, {});
        await until(svc, `incident ${n} closed`, (x) => x.phase === 'idle');
        await env.sleep('61s');
      }
    }
    await until(svc, 'escalated', (s) => s.phase === 'escalated');
    await waitFor(() => escalations(svc, 'ConsecutiveFailures').length === 1, { what: 'ConsecutiveFailures' });
  });

  it('caps what it remembers of firing alerts and alert names', async () => {
    const svc = 'capped.service';
    for (let batch = 0; batch < 5; batch++) {
      const alerts = Array.from({ length: 100 }, (_, i) => ({ id: `fp-${batch}-${i}`, name: `Alert${batch}_${i}` }));
      await fire(svc, { alertnames: alerts.map((a) => a.name), alerts });
    }
    const s = await until(svc, 'all signals handled', (x) => x.incident !== null && x.incident.duplicateAlerts === 4);
    assert.ok(s.firingAlerts.length <= MAX_FIRING_ALERTS, `firing alerts kept: ${s.firingAlerts.length}`);
    assert.ok(
      s.incident!.alertnames.length <= MAX_INCIDENT_ALERTNAMES,
      `alert names: ${s.incident!.alertnames.length}`,
    );
    // The newest alerts are the ones kept.
    assert.ok(s.firingAlerts.includes('Alert4_99'));
    const audit = readFileSync(config.audit.file, 'utf8');
    assert.ok(audit.length > 0);
  });
});
