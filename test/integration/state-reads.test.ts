// One service whose workflow cannot answer the `state` query must not hide the others: /metrics,
// ServiceActions.list, `selfheal status` and `selfheal poll` keep serving every other service, and
// mark the unreadable one as such. Real dev server, real workers; the unreadable workflows are real
// workflows of another type sitting under selfheal's workflow ids (test/metrics/fixtures).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import { PrometheusClient } from '../../src/activities/prometheus';
import { buildApp } from '../../src/api/app';
import { pollOnce } from '../../src/cli/poll';
import type { Config } from '../../src/config/config';
import { createMetrics, type SelfhealMetrics } from '../../src/metrics/metrics';
import { workflowStateSource } from '../../src/metrics/state-source';
import { ServiceActions } from '../../src/client/actions';
import { stateQuery, workflowIdFor } from '../../src/workflows/definitions';
import { startAlertsServer, type AlertsServer } from '../helpers/alerts-server';
import { runCli } from '../helpers/cli';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { devServerEnv, startWorkers, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

const TOKEN = 'webhook-token-0123456789';
const ADMIN = 'admin-token-0123456789abc';
const MAX_AGE_MS = 4_000;
const dir = tempDir();
let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let impostors: Worker;
let impostorRun: Promise<void>;
let config: Config;
let configFile: string;
let app: FastifyInstance;
let metrics: SelfhealMetrics;
let actions: ServiceActions;
let alerts: AlertsServer;

// a: healing; b: a workflow whose state query throws; c: never alerted; d: healing, then terminated;
// e: healing, then replaced by a workflow whose query throws; f: a workflow without a state query.
const SERVICES = ['a', 'b', 'c', 'd', 'e', 'f'].map((x) => `${x}.service`);
const series = (service: string) => ({ host: 'web1', service });

before(async () => {
  env = await devServerEnv();
  alerts = await startAlertsServer();
  const yaml = `
temporal: { address: "${env.address}", dataDir: ${dir} }
api: { token: ${TOKEN}, adminToken: ${ADMIN} }
prometheus: { url: "${alerts.url}" }
audit: { file: ${join(dir, 'audit.log')} }
policy: { validationWindow: 1h }
services:
${SERVICES.map((s) => `  - { name: ${s}, host: web1 }`).join('\n')}
`;
  config = testConfig(yaml, dir);
  configFile = join(dir, 'selfheal.yaml');
  writeFileSync(configFile, yaml);
  workers = await startWorkers(env, config, { hosts: ['web1'], managers: () => new FakeManager() });
  impostors = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: 'impostors',
    workflowBundle: await bundleWorkflowCode({
      workflowsPath: require.resolve('../metrics/fixtures/unreadable-workflows'),
      logger: new DefaultLogger('WARN'),
    }),
  });
  impostorRun = impostors.run();
  metrics = createMetrics(undefined, { maxStateAgeMs: MAX_AGE_MS, readCacheMs: 0 });
  metrics.initServices(config);
  actions = new ServiceActions(env.client, config, config.api.temporalTimeoutMs);
  metrics.setStateSource(workflowStateSource(actions, config));
  app = await buildApp({ config, client: env.client, metrics, actions });
});

after(async () => {
  await app?.close();
  impostors?.shutdown();
  await impostorRun;
  await workers?.shutdown();
  await env?.teardown();
  await alerts?.close();
});

const fire = (services: string[]) =>
  app.inject({
    method: 'POST',
    url: '/selfheal/trigger',
    headers: { authorization: `Bearer ${TOKEN}` },
    payload: {
      version: '4',
      status: 'firing',
      alerts: services.map((service) => ({
        status: 'firing',
        labels: { alertname: 'ServiceStalled', service, host: 'web1' },
      })),
    },
  });
const phase = async (service: string) =>
  (await env.client.workflow.getHandle(workflowIdFor('web1', service)).query(stateQuery)).phase;
const impostor = (type: 'throwingStateQuery' | 'noStateQuery', service: string) =>
  env.client.workflow.start(type, { taskQueue: 'impostors', workflowId: workflowIdFor('web1', service) });
const scrape = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body;

function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m && m[1] === name && want.every((w) => (m[2] ?? '').split(',').includes(w))) return Number(m[3]);
  }
  return undefined;
}

describe('one unreadable workflow', () => {
  before(async () => {
    const res = await fire(['a.service', 'd.service', 'e.service']);
    assert.equal(res.statusCode, 200, res.body);
    for (const s of ['a.service', 'd.service', 'e.service']) {
      await waitFor(async () => (await phase(s)) === 'validating', { what: `${s} validating` });
    }
    // e is read once while healthy, so its last good state (HEALING) is known.
    const first = await scrape();
    assert.equal(sample(first, 'selfhealing_service_status', series('e.service')), 1);
    await impostor('throwingStateQuery', 'b.service');
    await impostor('noStateQuery', 'f.service');
    await env.client.workflow.getHandle(workflowIdFor('web1', 'd.service')).terminate('test: operator terminated it');
    await env.client.workflow.getHandle(workflowIdFor('web1', 'e.service')).terminate('test: replaced');
    await impostor('throwingStateQuery', 'e.service');
  });

  it('/metrics keeps every other service current and marks the unreadable ones stale', async () => {
    const text = await scrape();
    assert.equal(sample(text, 'selfhealing_service_status', series('a.service')), 1, 'a is HEALING');
    assert.equal(sample(text, 'selfhealing_state_stale', series('a.service')), 0);
    assert.equal(sample(text, 'selfhealing_service_status', series('c.service')), 0, 'c never alerted: OK');
    // A terminated run heals nothing: it is not reported HEALING from its last recorded state.
    assert.equal(sample(text, 'selfhealing_service_status', series('d.service')), 0, 'd terminated: OK');
    for (const s of ['b.service', 'f.service']) {
      // Its last good read (the first scrape) found no workflow: that OK is shown, marked stale.
      assert.equal(sample(text, 'selfhealing_service_status', series(s)), 0, `${s}: last good state`);
      assert.equal(sample(text, 'selfhealing_state_stale', series(s)), 1, `${s} stale`);
      assert.ok(sample(text, 'selfhealing_state_read_errors_total', { ...series(s), reason: 'query-failed' })! >= 1);
    }
    assert.equal(sample(text, 'selfhealing_service_status', series('e.service')), 1, 'e: last good state');
    assert.equal(sample(text, 'selfhealing_state_stale', series('e.service')), 1);
    assert.equal(sample(text, 'selfhealing_temporal_up'), 1, 'Temporal itself answers');
    for (const s of SERVICES) assert.equal(sample(text, 'selfhealing_service_guarded', series(s)), 1);
  });

  it('a stale status stops being exported once older than the bound', async () => {
    await waitFor(async () => sample(await scrape(), 'selfhealing_service_status', series('e.service')) === undefined, {
      what: 'e status expired',
      timeoutMs: MAX_AGE_MS + 20_000,
      intervalMs: 500,
    });
    const text = await scrape();
    for (const s of ['b.service', 'e.service', 'f.service']) {
      assert.equal(sample(text, 'selfhealing_service_status', series(s)), undefined, `${s} expired`);
      assert.equal(sample(text, 'selfhealing_state_stale', series(s)), 1);
      assert.ok(sample(text, 'selfhealing_state_age_seconds', series(s))! >= MAX_AGE_MS / 1000);
    }
    assert.equal(sample(text, 'selfhealing_service_status', series('a.service')), 1, 'a still current');
  });

  it('ServiceActions.list answers for every service, the unreadable ones marked UNKNOWN with the reason', async () => {
    const list = await actions.list();
    const by = Object.fromEntries(list.map((s) => [s.service, s]));
    assert.equal(by['a.service'].status, 'HEALING');
    assert.equal(by['c.service'].status, 'OK');
    assert.equal(by['d.service'].status, 'OK');
    for (const s of ['b.service', 'e.service', 'f.service']) {
      assert.equal(by[s].status, 'UNKNOWN', s);
      assert.ok(by[s].readError, `${s} says why`);
    }
    assert.match(by['b.service'].readError!, /state is corrupt/);
    assert.match(by['f.service'].readError!, /did not register a handler for state/);
  });

  it('the state and the actions of an unreadable service answer 502 with the reason, not 500 or 503', async () => {
    const auth = { authorization: `Bearer ${ADMIN}` };
    const one = await app.inject({ method: 'GET', url: '/services/web1/b.service', headers: auth });
    assert.equal(one.statusCode, 502, one.body);
    assert.match(one.json().message, /b\.service on web1 could not answer its state query: state is corrupt/);
    const approve = await app.inject({
      method: 'POST',
      url: '/services/web1/f.service/approve',
      headers: auth,
      payload: {},
    });
    assert.equal(approve.statusCode, 502, approve.body);
    assert.match(approve.json().message, /did not register a handler for state/);
    const cli = await runCli(['status', 'b.service', '--config', configFile]);
    assert.equal(cli.code, 1, cli.stderr);
    assert.match(cli.stderr, /could not answer its state query: state is corrupt/);
  });

  it('selfheal status shows every service and exits 1 naming the unreadable ones', async () => {
    const r = await runCli(['status', '--config', configFile]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /web1\s+a\.service\s+HEALING\s+validating/);
    assert.match(r.stdout, /web1\s+c\.service\s+OK/);
    assert.match(r.stdout, /web1\s+b\.service\s+UNKNOWN/);
    assert.match(r.stderr, /3 service\(s\) could not be read/);
    assert.match(r.stderr, /b\.service on web1: .*state is corrupt/);
  });

  it('selfheal poll still feeds the readable services, and notes the unreadable one', async () => {
    alerts.set(
      ['a.service', 'b.service', 'c.service'].map((service) => ({
        labels: { alertname: 'ServiceStalled', service, host: 'web1' },
        annotations: {},
        state: 'firing',
        activeAt: new Date().toISOString(),
      })),
    );
    const r = await pollOnce(env.client, config, { prometheus: new PrometheusClient(alerts.url) });
    const sent = r.signalled.map((s) => `${s.service}:${s.status}`).sort();
    // a already knows its alert; c is new; b cannot be read, so its firing alert is sent (harmless if known).
    assert.deepEqual(sent, ['b.service:firing', 'c.service:firing']);
    assert.equal(r.unchanged, 1);
    assert.ok(
      r.notes.some((n) => /b\.service on web1: could not read its state/.test(n)),
      r.notes.join('\n'),
    );
    await waitFor(async () => (await phase('c.service')) === 'validating', { what: 'c validating' });
  });
});
