// The breaker's surfaces against the real dev server with the real coordinator: GET /breaker,
// POST /breaker/{trip,reset} (admin token), the metrics, and `selfheal breaker status|trip|reset`.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app';
import { breakerStatus } from '../../src/client/breaker';
import { ServiceActions } from '../../src/client/actions';
import type { Config } from '../../src/config/config';
import { createMetrics } from '../../src/metrics/metrics';
import { runCli } from '../helpers/cli';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { devServerEnv, startWorkers, type RunningWorkers } from '../helpers/temporal';

const TOKEN = 'webhook-token-0123456789';
const ADMIN = 'admin-token-0123456789abc';
const dir = tempDir();
let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let config: Config;
let app: FastifyInstance;
let configFile: string;

before(async () => {
  env = await devServerEnv();
  const yaml = `
temporal: { address: "${env.address}", dataDir: ${dir} }
api: { token: ${TOKEN}, adminToken: ${ADMIN} }
audit: { file: ${join(dir, 'audit.log')} }
services:
  - { name: a.service, host: web1 }
  - { name: b.service, host: web2 }
`;
  config = testConfig(yaml, dir);
  configFile = join(dir, 'selfheal.yaml');
  writeFileSync(configFile, yaml);
  workers = await startWorkers(env, config, { hosts: [], managers: () => new FakeManager() });
  const metrics = createMetrics();
  metrics.setFleetSource(() => breakerStatus(env.client, 5_000));
  app = await buildApp({
    config,
    client: env.client,
    metrics,
    actions: new ServiceActions(env.client, config, 10_000),
  });
});

after(async () => {
  await app?.close();
  await workers?.shutdown();
  await env?.teardown();
});

const admin = { authorization: `Bearer ${ADMIN}` };

describe('breaker API and CLI (dev server)', () => {
  it('reports every breaker closed before anything happened', async () => {
    const r = await app.inject({ method: 'GET', url: '/breaker', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().started, false);
    assert.equal((await app.inject({ method: 'GET', url: '/breaker' })).statusCode, 401);
  });

  it('trips and resets a scope with the admin token only, and the metrics follow', async () => {
    const denied = await app.inject({
      method: 'POST',
      url: '/breaker/trip',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: {},
    });
    assert.equal(denied.statusCode, 401);
    const bad = await app.inject({
      method: 'POST',
      url: '/breaker/trip',
      headers: admin,
      payload: { scope: 'nowhere' },
    });
    assert.equal(bad.statusCode, 400);
    const trip = await app.inject({
      method: 'POST',
      url: '/breaker/trip',
      headers: admin,
      payload: { scope: 'web1', by: 'ops', reason: 'switch upgrade' },
    });
    assert.equal(trip.statusCode, 200, trip.body);
    const web1 = trip.json().scopes.find((s: { scope: string }) => s.scope === 'host:web1');
    assert.equal(web1.state, 'open');
    assert.equal(web1.manual, true);
    assert.equal(web1.reason, 'switch upgrade');
    const m = await app.inject({ method: 'GET', url: '/metrics' });
    assert.match(m.body, /selfhealing_breaker_open\{scope="host:web1"\} 1/);
    assert.match(m.body, /selfhealing_breaker_open\{scope="fleet"\} 0/);
    assert.match(m.body, /selfhealing_restarts_in_flight 0/);
    const reset = await app.inject({
      method: 'POST',
      url: '/breaker/reset',
      headers: admin,
      payload: { scope: 'host:web1' },
    });
    assert.equal(reset.statusCode, 200, reset.body);
    assert.equal(reset.json().scopes.find((s: { scope: string }) => s.scope === 'host:web1').state, 'closed');
  });

  it('selfheal breaker trip|status|reset, with exit codes', async () => {
    const trip = await runCli(['breaker', 'trip', '--config', configFile, '--reason', 'cli test']);
    assert.equal(trip.code, 0, trip.stderr);
    assert.match(trip.stdout, /breaker fleet tripped/);
    const status = await runCli(['breaker', 'status', '--config', configFile, '--json']);
    assert.equal(status.code, 0, status.stderr);
    const v = JSON.parse(status.stdout);
    assert.equal(v.scopes.find((s: { scope: string }) => s.scope === 'fleet').state, 'open');
    const table = await runCli(['breaker', 'status', '--config', configFile]);
    assert.match(table.stdout, /fleet\s+open \(by hand\)\s+0\/2/);
    const bad = await runCli(['breaker', 'reset', 'nowhere', '--config', configFile]);
    assert.equal(bad.code, 2);
    const reset = await runCli(['breaker', 'reset', 'all', '--config', configFile]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.ok(
      (await breakerStatus(env.client, 5_000))!.scopes.every((s) => s.state === 'closed'),
      'every scope closed',
    );
  });
});
