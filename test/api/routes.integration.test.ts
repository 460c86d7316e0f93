// The HTTP API through app.inject, against the real Temporal dev server with real workers (the
// service manager is the in-memory one: restarts are not the subject here).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/api/app';
import type { Config } from '../../src/config/config';
import { createMetrics, type SelfhealMetrics } from '../../src/metrics/metrics';
import { workflowStateSource } from '../../src/metrics/state-source';
import { QUERY_ALL_LIMIT, ServiceActions } from '../../src/client/actions';
import { temporalCliPath } from '../../src/temporal/binaries';
import { stateQuery, WORKFLOW_TYPE, workflowIdFor, type ServiceStateView } from '../../src/workflows/definitions';
import { runCli } from '../helpers/cli';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { devServerEnv, startWorkers, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

const execFileAsync = promisify(execFile);
const TOKEN = 'webhook-token-0123456789';
const ADMIN = 'admin-token-0123456789abc';
const dir = tempDir();
let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let config: Config;
let app: FastifyInstance;
let metrics: SelfhealMetrics;
let configFile: string;
const fake = new FakeManager();
const logLines: string[] = [];

const SERVICES = Array.from({ length: 10 }, (_, i) => `svc${i}.service`);

before(async () => {
  env = await devServerEnv();
  const yaml = `
temporal: { address: "${env.address}", dataDir: ${dir} }
api: { token: ${TOKEN}, adminToken: ${ADMIN}, bodyLimit: 256KiB }
audit: { file: ${join(dir, 'audit.log')} }
policy: { validationWindow: 1h, verifyTimeout: 5s, verifyStableFor: 0s }
services:
${SERVICES.map((s) => `  - { name: ${s}, host: web1 }`).join('\n')}
  - { name: approval.service, host: web1, policy: { mode: approval, validationWindow: 1s } }
  - { name: cli.service, host: web1, policy: { mode: approval, validationWindow: 1s, cooldown: 1s } }
  - { name: twin.service, host: web1 }
  - { name: twin.service, host: web2 }
`;
  config = testConfig(yaml, dir);
  configFile = join(dir, 'selfheal.yaml');
  writeFileSync(configFile, yaml);
  workers = await startWorkers(env, config, { hosts: ['web1', 'web2'], managers: () => fake });
  metrics = createMetrics();
  metrics.initServices(config);
  const actions = new ServiceActions(env.client, config, config.api.temporalTimeoutMs);
  metrics.setStateSource(workflowStateSource(actions, config));
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  });
  app = await buildApp(
    { config, client: env.client, metrics, actions },
    { logger: { level: 'info', stream: logStream } },
  );
});

after(async () => {
  await app?.close();
  await workers?.shutdown();
  await env?.teardown();
});

type Alert = { status: 'firing' | 'resolved'; labels: Record<string, string>; annotations?: Record<string, string> };
const payload = (alerts: Alert[], extra: Record<string, unknown> = {}) => ({
  version: '4',
  groupKey: '{}:{alertname="ServiceStalled"}',
  status: alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
  receiver: 'selfheal',
  groupLabels: {},
  commonLabels: {},
  commonAnnotations: {},
  externalURL: 'http://alertmanager:9093',
  alerts,
  ...extra,
});
const alert = (
  service: string,
  host = 'web1',
  status: 'firing' | 'resolved' = 'firing',
  alertname = 'ServiceStalled',
): Alert => ({
  status,
  labels: { alertname, service, host, severity: 'critical' },
  annotations: { summary: `${service} stalled` },
});
const trigger = (body: unknown, token: string | null = TOKEN, headers: Record<string, string> = {}) =>
  app.inject({
    method: 'POST',
    url: '/selfheal/trigger',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    payload: body as object,
  });
const admin = (method: 'GET' | 'POST', url: string, body?: object, token = ADMIN) =>
  app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body ? { payload: body } : {}) });
const state = (service: string, host = 'web1'): Promise<ServiceStateView> =>
  env.client.workflow.getHandle(workflowIdFor(host, service)).query(stateQuery);

describe('POST /selfheal/trigger', () => {
  it('401 without a token and with a wrong one', async () => {
    const none = await trigger(payload([alert('svc0.service')]), null);
    assert.equal(none.statusCode, 401);
    assert.match(none.json().message, /missing bearer token/);
    assert.equal(none.headers['www-authenticate'], 'Bearer');
    const wrong = await trigger(payload([alert('svc0.service')]), 'not-the-token-at-all');
    assert.equal(wrong.statusCode, 401);
    assert.match(wrong.json().message, /wrong bearer token/);
    const adminTokenOnWebhook = await trigger(payload([alert('svc0.service')]), ADMIN);
    assert.equal(adminTokenOnWebhook.statusCode, 401, 'the admin token is not the webhook token');
  });

  it('400 with the reason for malformed payloads', async () => {
    const cases: [unknown, RegExp][] = [
      [{ ...payload([alert('svc0.service')]), version: '3' }, /version/],
      [{ version: '4', status: 'firing' }, /alerts/],
      [payload([{ status: 'bogus', labels: {} } as unknown as Alert]), /status/],
      [payload([{ status: 'firing', labels: { service: 5 } } as unknown as Alert]), /labels/],
    ];
    for (const [body, reason] of cases) {
      const res = await trigger(body);
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.match(res.json().message, reason);
    }
    const notJson = await trigger('{"version": "4", alerts: [', TOKEN, { 'content-type': 'application/json' });
    assert.equal(notJson.statusCode, 400);
    assert.match(notJson.json().message, /JSON/i);
  });

  it('413 for an oversized body', async () => {
    const huge = payload([{ ...alert('svc0.service'), annotations: { summary: 'x'.repeat(300 * 1024) } }]);
    const res = await trigger(huge);
    assert.equal(res.statusCode, 413);
  });

  it('signals-with-start the service workflow, which is then validating', async () => {
    const res = await trigger(payload([alert('svc0.service')]));
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.deepEqual(body.accepted, [
      {
        host: 'web1',
        service: 'svc0.service',
        status: 'firing',
        alertnames: ['ServiceStalled'],
        workflowId: 'selfheal/web1/svc0.service',
      },
    ]);
    const s = await waitFor(async () => {
      const st = await state('svc0.service');
      return st.phase === 'validating' ? st : null;
    });
    assert.equal(s.incident?.summary, 'svc0.service stalled');
  });

  it('a resolved notification cancels the remediation', async () => {
    const res = await trigger(payload([alert('svc0.service', 'web1', 'resolved')]));
    assert.equal(res.statusCode, 200);
    await waitFor(async () => (await state('svc0.service')).phase === 'idle', { what: 'idle after resolve' });
    assert.equal((await state('svc0.service')).totals.restarts, 0);
  });

  it('takes 1,000 alerts in one payload: one signal per service per status, unknowns ignored', async () => {
    const alerts: Alert[] = [];
    for (let i = 0; i < 1000; i++) {
      if (i % 4 === 3) alerts.push(alert(`unknown${i}.service`));
      else alerts.push(alert(SERVICES[1 + (i % 9)], 'web1', 'firing', i % 2 ? 'ServiceStalled' : 'ServiceDown'));
    }
    const res = await trigger(payload(alerts));
    assert.equal(res.statusCode, 200, res.body.slice(0, 500));
    const body = res.json();
    assert.equal(body.received, 1000);
    assert.equal(body.accepted.length, 9, 'one signal per service and status');
    assert.equal(body.ignored.length, 250);
    assert.ok(body.ignored.every((x: { reason: string }) => /not a configured service/.test(x.reason)));
    for (const a of body.accepted) assert.deepEqual(a.alertnames, ['ServiceDown', 'ServiceStalled']);
    for (const svc of SERVICES.slice(1)) {
      const s = await waitFor(async () => {
        const st = await state(svc);
        return st.incident ? st : null;
      });
      assert.equal(s.incident!.duplicateAlerts, 0, `${svc} got exactly one signal`);
      assert.deepEqual(s.firingAlerts, ['ServiceDown', 'ServiceStalled']);
    }
  });

  it('rejects an alert whose unit name has shell metacharacters, and still accepts the rest', async () => {
    const evil = [
      'svc0.service; reboot',
      '$(touch /tmp/selfheal-pwned)',
      'svc0.service && rm -rf /',
      '`id`.service',
      '-svc0.service',
    ];
    // twin.service on web2 is addressed by `instance` (host falls back to it, without its port); the
    // test after this one resolves this very alert (same labels, so the same identity).
    const twin: Alert = {
      status: 'firing',
      labels: { alertname: 'ServiceStalled', service: 'twin.service', instance: 'web2:9100' },
    };
    const res = await trigger(payload([...evil.map((s) => alert(s)), twin]));
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.rejected.length, evil.length);
    for (const r of body.rejected) assert.match(r.reason, /invalid service name/);
    assert.equal(body.accepted.length, 1);
    assert.equal(body.accepted[0].workflowId, 'selfheal/web2/twin.service');
    // Nothing was started for the rejected names and nothing was executed.
    const ids: string[] = [];
    for await (const wf of env.client.workflow.list({ query: `WorkflowType = '${WORKFLOW_TYPE}'` }))
      ids.push(wf.workflowId);
    for (const e of evil) assert.ok(!ids.some((id) => id.includes(e)), `no workflow for ${e}`);
    assert.ok(!fake.calls.some((c) => evil.includes(c.unit)));
  });

  it('collapses duplicated alerts in one payload into one signal', async () => {
    const res = await trigger(payload([alert('svc0.service'), alert('svc0.service'), alert('svc0.service')]));
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().accepted.length, 1);
    const s = await waitFor(async () => {
      const st = await state('svc0.service');
      return st.incident ? st : null;
    });
    assert.equal(s.incident!.duplicateAlerts, 0);
  });

  it('acknowledges but never acts on alerts about self-healing itself, missing labels, or unknown hosts', async () => {
    const res = await trigger(
      payload([
        alert('svc5.service', 'web1', 'firing', 'SelfHealingExhausted'),
        { status: 'firing', labels: { alertname: 'ServiceStalled', host: 'web1' } },
        alert('svc5.service', 'web9'),
        // host falls back to `instance` without its port
        { status: 'resolved', labels: { alertname: 'ServiceStalled', service: 'twin.service', instance: 'web2:9100' } },
      ]),
    );
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.deepEqual(
      body.ignored.map((x: { reason: string }) => x.reason.split(' ')[0]),
      ['SelfHealingExhausted', 'no', 'svc5.service'],
    );
    assert.equal(body.accepted.length, 1);
    assert.equal(body.accepted[0].workflowId, 'selfheal/web2/twin.service');
    assert.equal(body.accepted[0].status, 'resolved');
  });

  it('a resolved alert for a service without a workflow starts nothing', async () => {
    const res = await trigger(payload([alert('svc9.service', 'web1', 'resolved')]));
    // svc9 has a workflow from the 1,000-alert test; twin on web1 never alerted.
    const res2 = await trigger(payload([alert('twin.service', 'web1', 'resolved')]));
    assert.equal(res.statusCode, 200);
    assert.equal(res2.statusCode, 200);
    assert.match(res2.json().accepted[0].note, /no workflow/);
    await assert.rejects(state('twin.service', 'web1'));
  });
});

describe('services and human actions', () => {
  it('lists every configured service with its state', async () => {
    const res = await admin('GET', '/services');
    assert.equal(res.statusCode, 200);
    const services = res.json().services as { host: string; service: string; phase: string; exists: boolean }[];
    assert.equal(res.json().source, 'workflows', 'a small fleet is read from every workflow');
    assert.equal(services.length, config.services.length);
    assert.equal(services.find((s) => s.service === 'svc1.service')!.phase, 'validating');
    assert.equal(services.find((s) => s.service === 'twin.service' && s.host === 'web1')!.exists, false);
    const one = await admin('GET', '/services/web1/svc1.service');
    assert.equal(one.statusCode, 200);
    assert.equal(one.json().state.phase, 'validating');
    assert.equal((await admin('GET', '/services/web1/nope.service')).statusCode, 404);
    assert.equal(
      (await admin('GET', '/services', undefined, TOKEN)).statusCode,
      200,
      'reads accept the webhook token too',
    );
    assert.equal((await admin('GET', '/services', undefined, 'wrong-token-0000000000')).statusCode, 401);
  });

  it('actions need the admin token: wrong token 401, webhook token 401', async () => {
    assert.equal(
      (await admin('POST', '/services/web1/svc1.service/skip', {}, 'wrong-token-0000000000')).statusCode,
      401,
    );
    assert.equal((await admin('POST', '/services/web1/svc1.service/skip', {}, TOKEN)).statusCode, 401);
  });

  it('404 for an unknown service, 409 when there is nothing to approve or skip', async () => {
    assert.equal((await admin('POST', '/services/web1/nope.service/approve', {})).statusCode, 404);
    const approve = await admin('POST', '/services/web1/svc2.service/approve', {});
    assert.equal(approve.statusCode, 200, 'validating: approve skips the rest of the window');
    const nothing = await admin('POST', '/services/web1/svc3.service/approve', {});
    assert.equal(nothing.statusCode, 200);
    const never = await admin('POST', '/services/web2/twin.service/approve', {});
    assert.equal(never.statusCode, 409);
    assert.match(never.json().message, /nothing to approve/);
    assert.equal((await admin('POST', '/services/web1/twin.service/skip', {})).statusCode, 409);
    assert.equal((await admin('POST', '/services/web1/svc4.service/resume', {})).statusCode, 409, 'not paused');
    assert.equal((await admin('POST', '/services/web1/svc4.service/pause', { for: 'soon' })).statusCode, 400);
    assert.equal((await admin('POST', '/services/web1/svc4.service/approve', { for: '1h' })).statusCode, 400);
    assert.equal((await admin('POST', '/services/web1/svc4.service/reboot', {})).statusCode, 400);
  });

  it('approve, skip, pause and resume through the API act on the workflow', async () => {
    await trigger(payload([alert('approval.service')]));
    await waitFor(async () => (await state('approval.service')).phase === 'awaiting-approval', {
      what: 'awaiting approval',
    });
    const res = await admin('POST', '/services/web1/approval.service/approve', { reason: 'looked at it', by: 'ops' });
    assert.equal(res.statusCode, 200, res.body);
    assert.match(res.json().message, /approved one restart/);
    await waitFor(async () => (await state('approval.service')).totals.restarts === 1, { what: 'approved restart' });
    assert.equal(fake.restartsOf('approval.service'), 1);

    const skip = await admin('POST', '/services/web1/svc5.service/skip', { reason: 'known issue' });
    assert.equal(skip.statusCode, 200);
    await waitFor(async () => (await state('svc5.service')).phase === 'idle', { what: 'skipped' });

    const pause = await admin('POST', '/services/web1/svc6.service/pause', { for: '2h', reason: 'upgrade' });
    assert.equal(pause.statusCode, 200);
    assert.match(pause.json().message, /for 2h/);
    const paused = await waitFor(async () => {
      const st = await state('svc6.service');
      return st.paused ? st : null;
    });
    assert.ok(paused.pausedUntil);
    assert.equal((await admin('POST', '/services/web1/svc6.service/resume', {})).statusCode, 200);
    await waitFor(async () => !(await state('svc6.service')).paused, { what: 'resumed' });
  });

  it('the same actions work from the CLI', async () => {
    await trigger(payload([alert('cli.service')]));
    await waitFor(async () => (await state('cli.service')).phase === 'awaiting-approval', {
      what: 'awaiting approval',
    });
    const status = await runCli(['status', '--config', configFile]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /web1\s+cli\.service\s+HEALING\s+awaiting-approval/);
    const ambiguous = await runCli(['approve', 'twin.service', '--config', configFile]);
    assert.equal(ambiguous.code, 2);
    assert.match(ambiguous.stderr, /several hosts/);
    const approve = await runCli(['approve', 'cli.service', '--config', configFile, '--reason', 'cli test']);
    assert.equal(approve.code, 0, approve.stderr);
    await waitFor(
      async () => {
        const st = await state('cli.service');
        return st.totals.restarts === 1 && st.phase === 'idle';
      },
      { what: 'restart after CLI approve' },
    );
    const again = await runCli(['approve', 'cli.service', '--config', configFile]);
    assert.equal(again.code, 3, 'nothing to approve now');
    assert.match(again.stderr, /nothing to approve/);
    await trigger(payload([alert('cli.service')]));
    await waitFor(async () => (await state('cli.service')).phase === 'awaiting-approval', { what: 'second incident' });
    const skip = await runCli(['skip', 'cli.service', '--host', 'web1', '--config', configFile]);
    assert.equal(skip.code, 0, skip.stderr);
    await waitFor(async () => (await state('cli.service')).phase === 'idle', { what: 'skipped via CLI' });
    const detail = await runCli(['status', 'cli.service', '--config', configFile]);
    assert.match(detail.stdout, /Status:\s+OK/);
    assert.match(detail.stdout, /Totals:\s+2 incidents, 1 restarts/);
  });
});

describe('plain Temporal signals', () => {
  it('pause, query and resume with the Temporal CLI itself (as the README shows)', async () => {
    const temporal = temporalCliPath();
    assert.ok(temporal, 'the Temporal CLI is installed by npm run setup');
    // Asynchronous on purpose: the workers run in this process and must keep answering meanwhile.
    const cli = async (...args: string[]) =>
      (await execFileAsync(temporal!, [...args, '--address', env.address, '--namespace', 'default'])).stdout;
    const id = workflowIdFor('web1', 'svc7.service');
    await cli(
      'workflow',
      'signal',
      '--workflow-id',
      id,
      '--name',
      'pause',
      '--input',
      '{"by":"temporal-cli","reason":"test"}',
    );
    await waitFor(async () => (await state('svc7.service')).paused, { what: 'paused by the Temporal CLI' });
    const queried = await cli('workflow', 'query', '--workflow-id', id, '--type', 'state', '--output', 'json');
    assert.match(queried, /"paused": true/);
    await cli('workflow', 'signal', '--workflow-id', id, '--name', 'resume');
    await waitFor(async () => !(await state('svc7.service')).paused, { what: 'resumed by the Temporal CLI' });
  });
});

describe('reads past QUERY_ALL_LIMIT services', () => {
  it('lists from the visibility index, says so, and reads every workflow on request', async () => {
    const pads = Array.from({ length: QUERY_ALL_LIMIT }, (_, i) => `  - { name: pad${i}.service, host: pad }`);
    const bigDir = tempDir();
    const yaml = readFileSync(configFile, 'utf8').trimEnd() + '\n' + pads.join('\n') + '\n';
    const bigFile = join(bigDir, 'selfheal.yaml');
    writeFileSync(bigFile, yaml);
    const big = testConfig(yaml, bigDir);
    const bigApp = await buildApp({ config: big, client: env.client, metrics: createMetrics() });
    try {
      const get = async (url: string) => {
        const res = await bigApp.inject({ method: 'GET', url, headers: { authorization: `Bearer ${ADMIN}` } });
        assert.equal(res.statusCode, 200, res.body);
        return res.json() as { source: string; services: { service: string; phase: string; exists: boolean }[] };
      };
      // The index trails the workflows by a moment: wait for svc1's phase to show there.
      const indexed = await waitFor(
        async () => {
          const r = await get('/services');
          return r.services.find((s) => s.service === 'svc1.service')?.phase === 'validating' ? r : null;
        },
        { what: 'svc1 validating in the visibility index' },
      );
      assert.equal(indexed.source, 'index');
      assert.equal(indexed.services.length, big.services.length);
      assert.equal(indexed.services.find((s) => s.service === 'pad7.service')!.exists, false);
      const exact = await get('/services?exact=true');
      assert.equal(exact.source, 'workflows');
      assert.equal(exact.services.find((s) => s.service === 'svc1.service')!.phase, 'validating');

      const table = await runCli(['status', '--config', bigFile]);
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stderr, /visibility index .*--exact/s);
      assert.equal(table.stdout.trim().split('\n').length, big.services.length + 1, 'a header and a row per service');
      const json = await runCli(['status', '--json', '--exact', '--config', bigFile]);
      assert.equal(json.code, 0, json.stderr);
      assert.doesNotMatch(json.stderr, /visibility index/);
      assert.equal((JSON.parse(json.stdout) as unknown[]).length, big.services.length);
    } finally {
      await bigApp.close();
    }
  });
});

describe('metrics and logs', () => {
  it('exports the contract metrics with the true workflow state', async () => {
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    const text = res.body;
    assert.match(text, /selfhealing_service_status\{host="web1",service="svc1.service"\} 1/);
    assert.match(text, /selfhealing_service_status\{host="web2",service="twin.service"\} 0/);
    assert.match(text, /selfhealing_consecutive_failures\{host="web1",service="svc1.service"\} 0/);
    assert.match(text, /selfhealing_alerts_received_total\{status="firing"\} \d+/);
    assert.match(text, /selfhealing_alerts_ignored_total\{reason="invalid-name"\} 5/);
    assert.match(text, /selfhealing_webhook_requests_total\{code="401"\} 3/);
    assert.match(text, /selfhealing_restarts_total\{host="web1",service="svc1.service",result="success"\} 0/);
    assert.match(text, /selfhealing_http_request_duration_seconds_bucket\{.*route="\/selfheal\/trigger"/);
  });

  it('never writes a token to the log', () => {
    const all = logLines.join('');
    assert.ok(all.length > 1000, 'requests were logged');
    assert.ok(!all.includes(TOKEN), 'webhook token not in the log');
    assert.ok(!all.includes(ADMIN), 'admin token not in the log');
  });
});
