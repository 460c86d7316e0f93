// The resend ledger (src/api/resends.ts) must never take a new notification for a resend of an old
// one. Found by review: keyed only by the planned signals (which leave out startsAt), a service that
// resolved and fired again while a 503'd delivery's entry was still in the ledger had its new firing
// signal skipped: the API answered 200 and the workflow never heard the alert. The key now holds the
// alerts as received.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, type WorkflowClientInterceptor } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app';
import { createMetrics } from '../../src/metrics/metrics';
import { workflowIdFor } from '../../src/workflows/definitions';
import { tempDir, testConfig } from '../helpers/config';
import { devServerEnv } from '../helpers/temporal';

const TOKEN = 'webhook-token-0123456789';
const dir = tempDir();
let env: TestWorkflowEnvironment;
let app: FastifyInstance;
const failNext = new Set<string>();

before(async () => {
  env = await devServerEnv();
  const config = testConfig(
    `
temporal: { address: "${env.address}", dataDir: ${dir} }
api: { token: ${TOKEN}, adminToken: admin-token-0123456789abc }
policy: { validationWindow: 6h }
services:
  - { name: a.service, host: web1 }
  - { name: b.service, host: web1 }
`,
    dir,
  );
  const interceptor: WorkflowClientInterceptor = {
    async signalWithStart(input, next) {
      if (failNext.delete(input.options.workflowId)) throw new Error('injected: Temporal did not accept');
      return next(input);
    },
  };
  const client = new Client({
    connection: env.connection,
    namespace: 'default',
    interceptors: { workflow: [interceptor] },
  });
  app = await buildApp({ config, client, metrics: createMetrics() }, { logger: false });
});

after(async () => {
  await app?.close();
  await env?.teardown();
});

const alert = (service: string, status: 'firing' | 'resolved', startsAt: string) => ({
  status,
  labels: { alertname: 'ServiceDown', service, host: 'web1' },
  annotations: { summary: 'down' },
  startsAt,
});
const post = (status: string, alerts: unknown[]) =>
  app.inject({
    method: 'POST',
    url: '/selfheal/trigger',
    headers: { authorization: `Bearer ${TOKEN}` },
    payload: { version: '4', status, groupKey: '{}:{alertname="ServiceDown"}', alerts },
  });

async function signalNames(service: string): Promise<string[]> {
  const h = await env.client.workflow.getHandle(workflowIdFor('web1', service)).fetchHistory();
  return (h.events ?? [])
    .map((e) => e.workflowExecutionSignaledEventAttributes?.signalName)
    .filter((n): n is string => !!n);
}

describe('resend ledger: firing → resolved → firing again', () => {
  it('a new firing with the same content as a 503 delivery still reaches the workflow', async () => {
    const t0 = '2026-12-04T23:00:00Z';
    // 1. a.service and b.service fire; b's signal fails: 503, a's accepted (kept in the ledger).
    failNext.add(workflowIdFor('web1', 'b.service'));
    assert.equal(
      (await post('firing', [alert('a.service', 'firing', t0), alert('b.service', 'firing', t0)])).statusCode,
      503,
    );
    // 2. Alertmanager retries; b fails again (Temporal still struggling): 503, entry kept again.
    failNext.add(workflowIdFor('web1', 'b.service'));
    assert.equal(
      (await post('firing', [alert('a.service', 'firing', t0), alert('b.service', 'firing', t0)])).statusCode,
      503,
    );
    // 3. Alertmanager gave up on that notification. Temporal is fine again; a.service resolves.
    assert.equal(
      (await post('firing', [alert('a.service', 'resolved', t0), alert('b.service', 'firing', t0)])).statusCode,
      200,
    );
    // 4. a.service goes down again: a NEW alert (new startsAt), same labels and summary.
    const t1 = '2026-12-04T23:07:00Z';
    const res = await post('firing', [alert('a.service', 'firing', t1), alert('b.service', 'firing', t0)]);
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(
      await signalNames('a.service'),
      ['alertFiring', 'alertResolved', 'alertFiring'],
      'a.service fired again after resolving: its workflow must hear it',
    );
  });
});
