// `selfheal poll` (the no-Alertmanager option) against a real Prometheus with a firing rule: it
// starts the workflow; a second run changes nothing; when the alert is gone it sends the resolve.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createControlActivities } from '../../src/activities/control';
import { PrometheusClient } from '../../src/activities/prometheus';
import type { Config } from '../../src/config/config';
import { stateQuery, workflowIdFor, type ServiceStateView } from '../../src/workflows/definitions';
import { runCli } from '../helpers/cli';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { freePort } from '../helpers/ports';
import { devServerEnv, mockActivityEnv, runActivity, startWorkers, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

const SERVICE = 'crypto-agent@ETH_USDT.service';
const dir = tempDir();
let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let prometheus: ChildProcess;
let promUrl: string;
let config: Config;
let configFile: string;
const rulesFile = join(dir, 'rules.yml');

const firingRule = `groups:
  - name: test
    rules:
      - alert: ServiceStalled
        expr: vector(1)
        labels: { service: "${SERVICE}", host: homelab, severity: critical, audience: selfheal }
        annotations: { summary: "${SERVICE} on homelab stopped making progress" }
      - alert: SelfHealingExhausted
        expr: vector(1)
        labels: { service: "${SERVICE}", host: homelab }
      - alert: ServiceStalled
        expr: vector(1)
        labels: { service: "unknown.service", host: homelab }
`;

async function firingAlerts(): Promise<number> {
  const body = (await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as { data: { alerts: { state: string }[] } };
  return body.data.alerts.filter((a) => a.state === 'firing').length;
}

before(async () => {
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  writeFileSync(rulesFile, firingRule);
  const promConfig = join(dir, 'prometheus.yml');
  writeFileSync(promConfig, `global: { evaluation_interval: 1s }\nrule_files: [ ${rulesFile} ]\n`);
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${promConfig}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--web.enable-lifecycle',
    ],
    { stdio: 'ignore' },
  );
  env = await devServerEnv();
  const yaml = `
temporal: { address: "${env.address}", dataDir: ${dir} }
prometheus: { url: "${promUrl}" }
audit: { file: ${join(dir, 'audit.log')} }
policy: { validationWindow: 1h }
services: [ { name: "${SERVICE}", host: homelab } ]
`;
  config = testConfig(yaml, dir);
  configFile = join(dir, 'selfheal.yaml');
  writeFileSync(configFile, yaml);
  workers = await startWorkers(env, config, { hosts: ['homelab'], managers: () => new FakeManager() });
  await waitFor(async () => (await firingAlerts()) === 3, {
    what: 'three firing alerts in Prometheus',
    timeoutMs: 30_000,
  });
});

after(async () => {
  prometheus?.kill('SIGTERM');
  await workers?.shutdown();
  await env?.teardown();
});

const state = (): Promise<ServiceStateView> =>
  env.client.workflow.getHandle(workflowIdFor('homelab', SERVICE)).query(stateQuery);

describe('selfheal poll', () => {
  it('starts the workflow for a firing alert of a configured service, and nothing else', async () => {
    const r = await runCli(['poll', '--config', configFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /3 firing alert\(s\) in Prometheus; signalled 1, 0 unchanged, 2 ignored, 0 rejected/);
    // Every alert not acted on is explained.
    assert.match(r.stdout, /not acted on: unknown\.service on homelab \(ServiceStalled\): .*not a configured service/);
    assert.match(
      r.stdout,
      /not acted on: .* \(SelfHealingExhausted\): SelfHealingExhausted is about self-healing itself/,
    );
    const s = await waitFor(async () => {
      const st = await state().catch(() => null);
      return st?.phase === 'validating' ? st : null;
    });
    assert.deepEqual(s.firingAlerts, ['ServiceStalled']);
    assert.equal(s.incident?.summary, `${SERVICE} on homelab stopped making progress`);
  });

  it('is idempotent: a second run signals nothing', async () => {
    const before = await env.client.workflow.getHandle(workflowIdFor('homelab', SERVICE)).fetchHistory();
    const r = await runCli(['poll', '--config', configFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /signalled 0, 1 unchanged/);
    const afterHistory = await env.client.workflow.getHandle(workflowIdFor('homelab', SERVICE)).fetchHistory();
    const signals = (h: typeof before) =>
      (h.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes).length;
    assert.equal(signals(afterHistory), signals(before), 'no new signal');
    assert.equal((await state()).incident?.duplicateAlerts, 0);
  });

  it('the control activities ask Prometheus whether the alert of an incident still fires', async () => {
    const acts = createControlActivities({ config, prometheus: new PrometheusClient(promUrl), pollIntervalMs: 200 });
    const actEnv = mockActivityEnv();
    const check = { host: 'homelab', service: SERVICE, alertnames: ['ServiceStalled'] };
    assert.equal(await runActivity(actEnv, acts.alertStillFiring, check), true);
    assert.equal(await runActivity(actEnv, acts.alertStillFiring, { ...check, alertnames: ['ServiceDown'] }), false);
    assert.equal(await runActivity(actEnv, acts.alertStillFiring, { ...check, service: 'a.service' }), false);
    // `manual` incidents look at any alert of the service except those about self-healing itself.
    assert.equal(await runActivity(actEnv, acts.alertStillFiring, { ...check, alertnames: ['manual'] }), true);
    const wait = await runActivity(actEnv, acts.waitForAlertClear, { ...check, timeoutMs: 600 });
    assert.deepEqual(wait, { cleared: false, detail: 'still firing: ServiceStalled' });
    const offline = createControlActivities({
      config,
      prometheus: new PrometheusClient(`http://127.0.0.1:${await freePort()}`),
    });
    assert.equal(await runActivity(actEnv, offline.alertStillFiring, check), null, 'unknown, not a guess');
  });

  it('sends the resolve once the alert is gone from Prometheus', async () => {
    writeFileSync(rulesFile, 'groups: []\n');
    const reload = await fetch(`${promUrl}/-/reload`, { method: 'POST' });
    assert.equal(reload.status, 200);
    await waitFor(async () => (await firingAlerts()) === 0, { what: 'alerts gone' });
    const dry = await runCli(['poll', '--dry-run', '--config', configFile]);
    assert.match(dry.stdout, /would signal 1/);
    assert.match(dry.stdout, /resolved +crypto-agent@ETH_USDT\.service on homelab \(ServiceStalled\)/);
    assert.equal((await state()).phase, 'validating', 'dry run sent nothing');
    const r = await runCli(['poll', '--config', configFile]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(async () => (await state()).phase === 'idle', { what: 'validation cancelled by the resolve' });
    const acts = createControlActivities({ config, prometheus: new PrometheusClient(promUrl), pollIntervalMs: 200 });
    const cleared = await runActivity(mockActivityEnv(), acts.waitForAlertClear, {
      host: 'homelab',
      service: SERVICE,
      alertnames: ['ServiceStalled'],
      timeoutMs: 5_000,
    });
    assert.equal(cleared.cleared, true);
    assert.equal((await state()).totals.restarts, 0);
  });

  it('fails clearly when Prometheus is unreachable', async () => {
    const port = await freePort();
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      `temporal: { address: "${env.address}" }\nprometheus: { url: "http://127.0.0.1:${port}" }\nservices: [ { name: a.service, host: h } ]\n`,
    );
    const r = await runCli(['poll', '--config', bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /poll failed: Prometheus at http:\/\/127\.0\.0\.1:\d+ is unreachable/);
  });
});
