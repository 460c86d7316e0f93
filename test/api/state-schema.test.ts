// GET /services/:host/:service serves the workflow's `state` through a real response schema: what a
// workflow answers in each kind of phase must come out of the API whole (a field the schema missed
// would be dropped, a wrong type coerced), and must be what the schema says.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app';
import { ServiceSummarySchema } from '../../src/api/schemas/common';
import { ServiceStateSchema } from '../../src/api/schemas/state';
import { ServiceActions } from '../../src/client/actions';
import { signalWithStartService } from '../../src/client/signals';
import type { Config } from '../../src/config/config';
import { createMetrics } from '../../src/metrics/metrics';
import { alertFiringSignal, stateQuery, workflowIdFor, type ServiceStateView } from '../../src/workflows/definitions';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { startWorkers, timeSkippingEnv, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';
import { WebhookSink } from '../helpers/webhook-sink';

const ADMIN = 'admin-token-0123456789abc';
const dir = tempDir();
const fake = new FakeManager();
let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let sink: WebhookSink;
let config: Config;
let app: FastifyInstance;

before(async () => {
  sink = await WebhookSink.start();
  config = testConfig(
    `
temporal: { dataDir: ${dir}, searchAttributes: false }
api: { token: webhook-token-0123456789, adminToken: ${ADMIN} }
audit: { file: ${join(dir, 'audit.log')} }
escalation: { webhooks: [ { url: "${sink.url}" } ] }
policy: { validationWindow: 10s, cooldown: 1s, verifyTimeout: 5s, verifyStableFor: 0s, hostTimeout: 2s }
services:
  - { name: ok.service, host: h1 }
  - { name: bad.service, host: h1, policy: { maxConsecutiveFailures: 0 } }
  - { name: paused.service, host: h1 }
  - { name: window.service, host: h1, policy: { validationWindow: 1h } }
  - { name: never.service, host: h1 }
`,
    dir,
  );
  env = await timeSkippingEnv();
  workers = await startWorkers(env, config, { hosts: ['h1'], managers: () => fake });
  app = await buildApp({ config, client: env.client, metrics: createMetrics() });
});

after(async () => {
  await app?.close();
  await workers?.shutdown();
  await env?.teardown();
  await sink?.close();
});

const query = (service: string) => env.client.workflow.getHandle(workflowIdFor('h1', service)).query(stateQuery);
const fire = (service: string) =>
  signalWithStartService(env.client, config, 'h1', service, alertFiringSignal, { alertnames: ['ServiceStalled'] });

async function until(service: string, what: string, pred: (s: ServiceStateView) => boolean) {
  return waitFor(async () => ((s) => (pred(s) ? s : null))(await query(service)), { what: `${service}: ${what}` });
}

async function get(url: string) {
  const res = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(res.statusCode, 200, res.body);
  return res.json();
}

/** The API's answer for one service: its `state` is the query's answer, whole, and fits the schema. */
async function servedWhole(service: string, expected: ServiceStateView) {
  const body = await get(`/services/h1/${service}`);
  assert.deepEqual(body.state, expected);
  assert.deepEqual([...Value.Errors(ServiceStateSchema, body.state)], []);
  assert.deepEqual([...Value.Errors(ServiceSummarySchema, body.summary)], []);
  return body;
}

describe('GET /services/:host/:service serves the state query whole', () => {
  it('while validating: the open incident, its wait and its policy', async () => {
    await fire('window.service');
    const s = await until('window.service', 'validating', (x) => x.phase === 'validating');
    assert.ok(s.incident?.waitUntil && s.policy, JSON.stringify(s));
    await servedWhole('window.service', s);
  });

  it('after a verified restart: the attempt with its detail, restart times, totals', async () => {
    await fire('ok.service');
    await until('ok.service', 'validating', (x) => x.phase === 'validating');
    await env.sleep('11s');
    const s = await until('ok.service', 'restarted', (x) => x.phase === 'idle' && x.totals.restarts === 1);
    assert.ok(s.recentAttempts[0]?.detail !== undefined && s.restartTimes.length === 1, JSON.stringify(s));
    await servedWhole('ok.service', s);
  });

  it('escalated: the last escalation and a failed attempt', async () => {
    fake.set('bad.service', { failsOnStart: true });
    await fire('bad.service');
    await until('bad.service', 'validating', (x) => x.phase === 'validating');
    await env.sleep('11s');
    const s = await until('bad.service', 'escalated', (x) => x.phase === 'escalated' && x.lastEscalation !== null);
    assert.equal(s.recentAttempts[0]?.result, 'failure');
    await servedWhole('bad.service', s);
  });

  it('paused for a while: until when and why', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/services/h1/paused.service/pause',
      headers: { authorization: `Bearer ${ADMIN}` },
      payload: { for: '30m', reason: 'maintenance' },
    });
    assert.equal(res.statusCode, 200, res.body);
    const s = await until('paused.service', 'paused', (x) => x.paused);
    assert.ok(s.pausedUntil && s.pauseReason === 'maintenance', JSON.stringify(s));
    await servedWhole('paused.service', s);
  });

  it('lists every service with a summary the schema describes; a service that never alerted has no state', async () => {
    const never = await get('/services/h1/never.service');
    assert.equal(never.state, null);
    assert.equal(never.summary.exists, false);
    const actions = new ServiceActions(env.client, config);
    const { services } = await get('/services');
    assert.deepEqual(
      services,
      (await actions.states()).map(({ svc, state }) => actions.summaryOf(svc, state)),
    );
    for (const s of services) assert.deepEqual([...Value.Errors(ServiceSummarySchema, s)], []);
  });
});
