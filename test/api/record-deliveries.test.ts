// api.recordDeliveries: every accepted webhook body becomes one JSON line that `selfheal simulate
// --alerts` replays; refused requests are not recorded; the file is rotated at its size limit.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app';
import { DeliveryRecorder } from '../../src/api/record';
import { ServiceActions } from '../../src/client/actions';
import { createMetrics } from '../../src/metrics/metrics';
import { historyFromDeliveries } from '../../src/simulate/sources';
import { tempDir, testConfig } from '../helpers/config';
import { timeSkippingEnv } from '../helpers/temporal';

const TOKEN = 'webhook-token-0123456789';
const dir = tempDir();
const file = join(dir, 'deliveries.jsonl');
let env: TestWorkflowEnvironment;
let app: FastifyInstance;

before(async () => {
  env = await timeSkippingEnv();
  const config = testConfig(
    `
api: { token: ${TOKEN}, recordDeliveries: deliveries.jsonl }
audit: { file: ${join(dir, 'audit.log')} }
services:
  - { name: web.service, host: app1 }
`,
    dir,
  );
  assert.equal(config.api.recordDeliveries, file, 'a relative path is under the config’s folder');
  const metrics = createMetrics();
  app = await buildApp(
    { config, client: env.client, metrics, actions: new ServiceActions(env.client, config, 5_000) },
    { logger: false },
  );
});

after(async () => {
  await app?.close();
  await env?.teardown();
});

const body = (status: 'firing' | 'resolved', service = 'web.service') => ({
  version: '4',
  status,
  receiver: 'selfheal',
  alerts: [{ status, labels: { alertname: 'ServiceDown', service, host: 'app1' } }],
});

describe('api.recordDeliveries', () => {
  it('is off unless set', () => {
    assert.equal(testConfig('services: []').api.recordDeliveries, null);
  });

  it('appends each accepted delivery, and not a refused one, as a line simulate reads back', async () => {
    const post = (b: object, token = TOKEN) =>
      app.inject({
        method: 'POST',
        url: '/selfheal/trigger',
        headers: { authorization: `Bearer ${token}` },
        payload: b,
      });
    assert.equal((await post(body('firing'))).statusCode, 200);
    assert.equal((await post(body('firing'), 'wrong-token-0123456789')).statusCode, 401);
    assert.equal((await post({ alerts: 'nope' })).statusCode, 400);
    assert.equal((await post(body('resolved'))).statusCode, 200);
    // Writes are queued behind the reply: wait until both lines are there (bounded).
    const deadline = Date.now() + 5_000;
    while ((existsSync(file) ? readFileSync(file, 'utf8').split('\n').length - 1 : 0) < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, 2);
    const first = JSON.parse(lines[0]) as { receivedAt: string; body: unknown };
    assert.ok(Number.isFinite(Date.parse(first.receivedAt)));
    assert.deepEqual(first.body, body('firing'));
    const history = historyFromDeliveries(file);
    assert.deepEqual(
      history.deliveries.map((d) => d.alerts[0].status),
      ['firing', 'resolved'],
    );
  });
});

describe('DeliveryRecorder', () => {
  it('rotates to FILE.1 past its size limit, so at most twice the limit is kept', async () => {
    const f = join(dir, 'small.jsonl');
    const errors: string[] = [];
    const rec = new DeliveryRecorder(f, (m) => errors.push(m), 1_000);
    for (let i = 0; i < 50; i++) void rec.record(body('firing', `svc${i}.service`));
    await rec.flush();
    assert.deepEqual(errors, []);
    assert.ok(statSync(f).size <= 1_000);
    assert.ok(statSync(`${f}.1`).size <= 1_000);
    // The newest line is in the current file.
    assert.match(readFileSync(f, 'utf8'), /svc49\.service/);
  });

  it('an unwritable file is reported, never thrown', async () => {
    const errors: string[] = [];
    const rec = new DeliveryRecorder(join(dir, 'no-such-dir', 'x.jsonl'), (m) => errors.push(m));
    await rec.record(body('firing'));
    assert.equal(errors.length, 1);
    assert.match(errors[0], /cannot write/);
  });
});
