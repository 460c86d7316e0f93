// Alertmanager silences honoured at the moment of acting, against a real Alertmanager: the
// activity's reading of API v2 (Alertmanager's own silencedBy, matchers incl. regex and isEqual
// false, expiry, unreachable), and the incident held while silenced and let go when it expires.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createFleetActivities } from '../../src/activities/fleet';
import { signalWithStartService } from '../../src/client/signals';
import { alertFiringSignal, stateQuery, workflowIdFor, type ServiceStateView } from '../../src/workflows/definitions';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { freePort } from '../helpers/ports';
import { startWorkers, timeSkippingEnv } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';
import { tool } from '../monitoring/helpers';

const dir = tempDir('selfheal-silences-');
let am: ChildProcess | undefined;
let base = '';

before(async () => {
  const binary = tool('prometheus-alertmanager', 'prometheus-alertmanager');
  writeFileSync(join(dir, 'am.yml'), "route: { receiver: 'null' }\nreceivers: [ { name: 'null' } ]\n");
  mkdirSync(join(dir, 'data'), { recursive: true });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  am = spawn(
    binary,
    [
      `--config.file=${join(dir, 'am.yml')}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
    ],
    { stdio: 'ignore' },
  );
  await waitFor(async () => (await fetch(`${base}/-/ready`)).ok, { timeoutMs: 15_000, what: 'Alertmanager ready' });
});

after(async () => {
  if (am && am.exitCode === null) {
    const exited = new Promise((r) => am?.once('exit', r));
    am.kill('SIGTERM');
    await exited;
  }
});

type M = { name: string; value: string; isRegex?: boolean; isEqual?: boolean };
async function silence(matchers: M[], comment: string): Promise<string> {
  const now = Date.now();
  const res = await fetch(`${base}/api/v2/silences`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      matchers: matchers.map((m) => ({ isRegex: false, isEqual: true, ...m })),
      startsAt: new Date(now - 1000).toISOString(),
      endsAt: new Date(now + 3_600_000).toISOString(),
      createdBy: 'alice',
      comment,
    }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return (JSON.parse(text) as { silenceID: string }).silenceID;
}
const expire = async (id: string) =>
  assert.equal((await fetch(`${base}/api/v2/silence/${id}`, { method: 'DELETE' })).status, 200);
async function postAlert(labels: Record<string, string>) {
  const res = await fetch(`${base}/api/v2/alerts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify([{ labels, annotations: {} }]),
  });
  assert.equal(res.status, 200);
}

const configWith = (url: string, extra = '') =>
  testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
alertmanager: { url: "${url}"${extra} }
policy: { validationWindow: 1m, verifyTimeout: 5s, verifyStableFor: 0s, hostTimeout: 2s }
services:
  - { name: a.service, host: h }
  - { name: crypto-agent@BTC_USDT.service, host: h }
  - { name: w.service, host: h }
`,
    dir,
  );

describe('silences (real Alertmanager)', () => {
  it("finds the silence that mutes the service's alert, by Alertmanager's own verdict or by matchers", async () => {
    const acts = createFleetActivities(configWith(base));
    const check = (service: string) => acts.activeSilence({ host: 'h', service, alertnames: ['ServiceStalled'] });
    assert.deepEqual(await check('a.service'), { reachable: true, silence: null });
    // A silence made from the alert in the UI carries all its labels, some we do not know (instance, job).
    const labels = {
      alertname: 'ServiceStalled',
      service: 'a.service',
      host: 'h',
      instance: '10.0.0.1:9100',
      job: 'a',
    };
    await postAlert(labels);
    const id = await silence(
      Object.entries(labels).map(([name, value]) => ({ name, value })),
      'deploying a new release',
    );
    const hit = await waitFor(async () => {
      const r = await check('a.service');
      return r.reachable === true && r.silence ? r.silence : null;
    });
    assert.equal(hit.id, id);
    assert.equal(hit.createdBy, 'alice');
    assert.equal(hit.comment, 'deploying a new release');
    // A regex silence set up before any alert of the service reached Alertmanager.
    const re = await silence([{ name: 'service', value: 'crypto-agent@.*', isRegex: true }], 'exchange maintenance');
    const r2 = await check('crypto-agent@BTC_USDT.service');
    assert.equal(r2.reachable === true && r2.silence?.id, re);
    // isEqual false: everything but w.service.
    const ne = await silence(
      [
        { name: 'alertname', value: 'ServiceStalled' },
        { name: 'service', value: 'w.service', isEqual: false },
        { name: 'host', value: 'other' },
      ],
      'other host',
    );
    const r3 = await check('w.service');
    assert.deepEqual(r3, { reachable: true, silence: null }, `silence ${ne} must not match w.service`);
    await expire(id);
    await expire(re);
    assert.deepEqual(await check('a.service'), { reachable: true, silence: null });
  });

  it('says when Alertmanager cannot be asked, and whether to hold', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const proceed = await createFleetActivities(configWith(closed)).activeSilence({
      host: 'h',
      service: 'a.service',
      alertnames: [],
    });
    assert.equal(proceed.reachable, false);
    assert.equal(proceed.reachable === false && proceed.hold, false);
    const held = await createFleetActivities(configWith(closed, ', unreachable: hold')).activeSilence({
      host: 'h',
      service: 'a.service',
      alertnames: [],
    });
    assert.equal(held.reachable === false && held.hold, true);
  });

  it('holds an incident silenced during its validation window, and remediates once the silence expires', async () => {
    const config = configWith(base);
    const env = await timeSkippingEnv();
    const fake = new FakeManager();
    const workers = await startWorkers(env, config, { hosts: ['h'], managers: () => fake });
    try {
      const svc = 'a.service';
      const state = () =>
        env.client.workflow.getHandle(workflowIdFor('h', svc)).query(stateQuery) as Promise<ServiceStateView>;
      fake.stop(svc);
      await signalWithStartService(env.client, config, 'h', svc, alertFiringSignal, { alertnames: ['ServiceStalled'] });
      await waitFor(async () => (await state()).phase === 'validating');
      const id = await silence(
        [
          { name: 'service', value: svc },
          { name: 'host', value: 'h' },
        ],
        'planned maintenance',
      );
      await env.sleep('70s');
      const held = await waitFor(async () => {
        const s = await state();
        return s.phase === 'held' ? s : null;
      });
      assert.equal(held.held?.reason, 'silenced');
      assert.match(held.held!.detail, new RegExp(`silence ${id} by alice: planned maintenance`));
      await env.sleep('5m');
      assert.equal(fake.restartsOf(svc), 0, 'no restart while silenced');
      await expire(id);
      for (let n = 0; n < 40 && fake.restartsOf(svc) === 0; n++) await env.sleep('10s');
      await waitFor(async () => (await state()).phase === 'idle');
      assert.equal(fake.restartsOf(svc), 1);
      const audit = readFileSync(config.audit.file, 'utf8');
      assert.match(audit, /"decision":"hold-silenced"/);
    } finally {
      await workers.shutdown();
      await env.teardown();
    }
  });
});
