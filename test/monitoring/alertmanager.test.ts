// monitoring/alertmanager.yml: amtool's checks and routing, the inhibition rules, and a run of the
// real Alertmanager (config unchanged except where it delivers) that shows the inhibition at work.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { labelsFingerprint } from '../../src/client/alert-intake';
import { waitFor } from '../helpers/wait';
import { WebhookSink } from '../helpers/webhook-sink';
import { explain, readYaml, repo, run, scratchDir, tool } from './helpers';

const CONFIG = 'monitoring/alertmanager.yml';

interface Route {
  receiver?: string;
  matchers?: string[];
  group_by?: string[];
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: Route[];
}
interface WebhookConfig {
  url: string;
  send_resolved?: boolean;
  max_alerts?: number;
  http_config?: { authorization?: { type?: string; credentials_file?: string } };
}
interface AlertmanagerConfig {
  route: Route;
  inhibit_rules: { source_matchers: string[]; target_matchers: string[]; equal: string[] }[];
  receivers: { name: string; webhook_configs?: WebhookConfig[] }[];
}

const config = () => readYaml<AlertmanagerConfig>(CONFIG);

/** The receivers amtool routes an alert with these labels to. */
function routeOf(labels: Record<string, string>): string[] {
  const args = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  const r = run(tool('amtool', 'prometheus-alertmanager'), [
    'config',
    'routes',
    'test',
    `--config.file=${CONFIG}`,
    ...args,
  ]);
  assert.equal(r.code, 0, explain(r));
  return r.stdout.trim().split(/[\s,]+/);
}

describe('monitoring/alertmanager.yml', () => {
  it('passes amtool check-config', () => {
    const r = run(tool('amtool', 'prometheus-alertmanager'), ['check-config', CONFIG]);
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, /SUCCESS/);
  });

  it('routes each alert to the right receiver', () => {
    const svc = { host: 'homelab', service: 'jira-worker.service' };
    assert.deepEqual(routeOf({ alertname: 'ServiceStalled', audience: 'selfheal', reason: 'down', ...svc }), [
      'selfheal',
    ]);
    assert.deepEqual(routeOf({ alertname: 'ServiceStalled', audience: 'admin', reason: 'down', ...svc }), ['admin']);
    assert.deepEqual(routeOf({ alertname: 'SelfHealingExhausted', severity: 'critical', ...svc }), ['admin']);
    assert.deepEqual(routeOf({ alertname: 'ConsecutiveFailures', severity: 'critical', ...svc }), ['admin']);
    assert.deepEqual(routeOf({ alertname: 'SelfHealingActive', severity: 'info', ...svc }), ['null']);
    assert.deepEqual(routeOf({ alertname: 'SelfHealingUnavailable', severity: 'warning' }), ['admin']);
    // Only the selfheal copy reaches selfheal: a ServiceStalled without audience goes to the admin.
    assert.deepEqual(routeOf({ alertname: 'ServiceStalled', ...svc }), ['admin']);
  });

  it('groups per alert and service, with the short waits on the selfheal route', () => {
    const { route } = config();
    assert.deepEqual(route.group_by, ['alertname', 'host', 'service']);
    const selfheal = route.routes?.find((r) => r.receiver === 'selfheal');
    assert.ok(selfheal);
    assert.equal(selfheal.group_wait, '10s');
    assert.equal(selfheal.group_interval, '30s');
    assert.equal(selfheal.repeat_interval, '4h');
  });

  it('posts to selfheal with a bearer token file, resolved notifications and no alert limit', () => {
    const selfheal = config().receivers.find((r) => r.name === 'selfheal')?.webhook_configs?.[0];
    assert.ok(selfheal);
    assert.equal(selfheal.url, 'http://127.0.0.1:5000/selfheal/trigger');
    assert.equal(selfheal.send_resolved, true);
    assert.equal(selfheal.max_alerts, 0);
    assert.equal(selfheal.http_config?.authorization?.credentials_file, '/etc/selfheal/token');
    assert.equal(selfheal.http_config?.authorization?.type ?? 'Bearer', 'Bearer');
    const nul = config().receivers.find((r) => r.name === 'null');
    assert.deepEqual(nul, { name: 'null' }, 'the null receiver must notify nobody');
  });

  it('inhibits only the admin copy of ServiceStalled while self-healing is active, and ConsecutiveFailures under SelfHealingExhausted', () => {
    assert.deepEqual(config().inhibit_rules, [
      {
        source_matchers: ['alertname="SelfHealingActive"'],
        target_matchers: ['alertname="ServiceStalled"', 'audience="admin"'],
        equal: ['host', 'service'],
      },
      {
        source_matchers: ['alertname="SelfHealingExhausted"'],
        target_matchers: ['alertname="ConsecutiveFailures"'],
        equal: ['host', 'service'],
      },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// The real Alertmanager. Only the receivers' addresses and the token path are changed.

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

interface AmAlert {
  labels: Record<string, string>;
  status: { state: string; inhibitedBy: string[] };
}

describe('Alertmanager running monitoring/alertmanager.yml', () => {
  let am: ChildProcess | undefined;
  let sink: WebhookSink;
  let base = '';
  let amLog = '';
  const token = 'test-token-0123456789abcdef';

  before(async () => {
    const binary = tool('prometheus-alertmanager', 'prometheus-alertmanager');
    sink = await WebhookSink.start();
    const sinkBase = new URL(sink.url).origin;
    const dir = scratchDir('selfheal-am-');
    writeFileSync(join(dir, 'token'), token);
    const text = readFileSync(repo(CONFIG), 'utf8')
      .replaceAll('http://127.0.0.1:5000', sinkBase)
      .replaceAll('http://127.0.0.1:9099', sinkBase)
      .replaceAll('/etc/selfheal/token', join(dir, 'token'));
    writeFileSync(join(dir, 'alertmanager.yml'), text);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    am = spawn(
      binary,
      [
        `--config.file=${join(dir, 'alertmanager.yml')}`,
        `--storage.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    am.stderr?.on('data', (d: Buffer) => (amLog += d.toString()));
    await waitFor(async () => (await fetch(`${base}/-/ready`)).ok, { timeoutMs: 15_000, what: 'Alertmanager ready' });
  });

  after(async () => {
    if (am && am.exitCode === null) {
      const exited = new Promise((r) => am?.once('exit', r));
      am.kill('SIGTERM');
      await exited;
    }
    await sink?.close();
  });

  const post = async (alerts: Record<string, string>[]) => {
    const res = await fetch(`${base}/api/v2/alerts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(alerts.map((labels) => ({ labels, annotations: { summary: 'test' } }))),
    });
    assert.equal(res.status, 200, await res.text());
  };
  const alerts = async (): Promise<AmAlert[]> => (await (await fetch(`${base}/api/v2/alerts`)).json()) as AmAlert[];
  const find = (list: AmAlert[], labels: Record<string, string>) =>
    list.find((a) => Object.entries(labels).every(([k, v]) => a.labels[k] === v));

  it('mutes the admin copy while SelfHealingActive fires, never the selfheal copy, and delivers it with the token', async () => {
    const svc = { host: 'homelab', service: 'crypto-agent@BTC_USDT.service' };
    const other = { host: 'homelab', service: 'jira-worker.service' };
    await post([
      { alertname: 'ServiceStalled', audience: 'selfheal', reason: 'down', severity: 'critical', ...svc },
      { alertname: 'ServiceStalled', audience: 'admin', reason: 'down', severity: 'critical', ...svc },
      { alertname: 'SelfHealingActive', severity: 'info', ...svc },
      // Another service with no self-healing in progress: its admin copy is not muted.
      { alertname: 'ServiceStalled', audience: 'admin', reason: 'down', severity: 'critical', ...other },
      { alertname: 'SelfHealingExhausted', severity: 'critical', ...other },
      { alertname: 'ConsecutiveFailures', severity: 'critical', ...other },
    ]);

    const settled = await waitFor(
      async () => {
        const list = await alerts();
        const admin = find(list, { alertname: 'ServiceStalled', audience: 'admin', ...svc });
        const cf = find(list, { alertname: 'ConsecutiveFailures', ...other });
        return admin?.status.state === 'suppressed' && cf?.status.state === 'suppressed' ? list : null;
      },
      { timeoutMs: 10_000, what: `inhibition to apply (alertmanager log: ${amLog})` },
    );
    assert.equal(
      find(settled, { alertname: 'ServiceStalled', audience: 'admin', ...svc })?.status.inhibitedBy.length,
      1,
    );
    assert.equal(find(settled, { alertname: 'ServiceStalled', audience: 'selfheal', ...svc })?.status.state, 'active');
    assert.equal(find(settled, { alertname: 'ServiceStalled', audience: 'admin', ...other })?.status.state, 'active');
    assert.equal(find(settled, { alertname: 'SelfHealingExhausted', ...other })?.status.state, 'active');

    // group_wait 10s on the selfheal route, then one webhook request with the bearer token.
    const delivery = await waitFor(() => sink.received.find((r) => r.path === '/selfheal/trigger'), {
      timeoutMs: 20_000,
      what: 'the selfheal webhook delivery',
    });
    assert.equal(delivery.headers.authorization, `Bearer ${token}`);
    const body = delivery.body as {
      version: string;
      receiver: string;
      alerts: { labels: Record<string, string>; fingerprint: string }[];
    };
    assert.equal(body.version, '4');
    // selfheal tracks alerts by identity; without a fingerprint it computes the one Alertmanager would.
    for (const a of body.alerts) assert.equal(labelsFingerprint(a.labels), a.fingerprint);
    assert.equal(body.receiver, 'selfheal');
    assert.deepEqual(
      body.alerts.map((a) => [a.labels.alertname, a.labels.audience, a.labels.service]),
      [['ServiceStalled', 'selfheal', svc.service]],
    );
  });
});
