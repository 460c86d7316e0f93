// Nothing is lost while Temporal is down: the webhook answers 503, and a real Alertmanager
// (Debian prometheus-alertmanager) with the shipped receiver retries until Temporal is back and
// the service's workflow starts.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { clientConnectionOptions } from '../../src/temporal/connection';
import { startApiServer, type ApiServer } from '../../src/api/server';
import type { Config } from '../../src/config/config';
import { createMetrics, type SelfhealMetrics } from '../../src/metrics/metrics';
import { DevServer } from '../../src/temporal/dev-server';
import { workflowIdFor } from '../../src/workflows/definitions';
import { alertmanagerOverlay, shippedAlertmanagerConfig } from '../helpers/alertmanager';
import { tempDir, testConfig } from '../helpers/config';
import { freePorts } from '../helpers/ports';
import { waitFor } from '../helpers/wait';

const TOKEN = 'webhook-token-0123456789';
const dir = tempDir();
let temporalPort: number;
let amPort: number;
let devServer: DevServer | null = null;
let api: ApiServer;
let metrics: SelfhealMetrics;
let config: Config;
let connection: Connection;
let alertmanager: ChildProcess | null = null;
let amLog = '';

const startTemporal = () =>
  DevServer.start({
    dataDir: join(dir, 'temporal'),
    port: temporalPort,
    uiPort: 0,
    headless: true,
    namespace: 'default',
  });

/** The shipped alertmanager.yml, pointed at this test's API and token file. */
function writeAlertmanagerConfig(apiPort: number): string {
  const shipped = shippedAlertmanagerConfig().receivers.find((r) => r.name === 'selfheal')!.webhook_configs![0];
  assert.equal(shipped.url, 'http://127.0.0.1:5000/selfheal/trigger', 'the shipped receiver');
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, TOKEN + '\n', { mode: 0o600 });
  const file = join(dir, 'alertmanager.yml');
  writeFileSync(file, alertmanagerOverlay({ webhookUrl: `http://127.0.0.1:${apiPort}/selfheal/trigger`, tokenFile }));
  return file;
}

before(async () => {
  let apiPort: number;
  [temporalPort, amPort, apiPort] = await freePorts(3);
  config = testConfig(
    `
temporal: { address: "127.0.0.1:${temporalPort}" }
api: { listen: "127.0.0.1:${apiPort}", token: ${TOKEN}, adminToken: admin-token-0123456789, temporalTimeout: 2s }
services: [ { name: crypto-agent@BTC_USDT.service, host: homelab } ]
`,
    dir,
  );
  connection = Connection.lazy(clientConnectionOptions(config)); // as selfheal start connects
  metrics = createMetrics();
  api = await startApiServer({ config, client: new Client({ connection }), metrics }, { logger: false });
  const amConfig = writeAlertmanagerConfig(apiPort);
  alertmanager = spawn(
    'prometheus-alertmanager',
    [
      `--config.file=${amConfig}`,
      `--storage.path=${join(dir, 'am')}`,
      `--web.listen-address=127.0.0.1:${amPort}`,
      '--cluster.listen-address=',
      '--log.level=debug',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  alertmanager.stderr?.on('data', (d: Buffer) => (amLog += d.toString()));
  await waitFor(async () => (await fetch(`http://127.0.0.1:${amPort}/-/ready`)).ok, { what: 'Alertmanager ready' });
});

// Teardown in dependency order: no new deliveries (Alertmanager gone), no requests (API closed),
// then Temporal, and the client channel last, so a delivery still running when Alertmanager hung up
// fails as "unreachable" instead of on a shut-down channel.
after(async () => {
  if (alertmanager && alertmanager.exitCode === null) {
    const exited = new Promise((r) => alertmanager!.once('exit', r));
    alertmanager.kill('SIGTERM');
    await exited;
  }
  await api?.close();
  await devServer?.stop();
  await connection?.close();
});

describe('webhook with Temporal down, then back', () => {
  it('answers 503 while Temporal is down; Alertmanager redelivers and the workflow starts once it is back', async () => {
    // Alertmanager receives a firing ServiceStalled alert, as Prometheus would send it.
    const alert = [
      {
        labels: {
          alertname: 'ServiceStalled',
          audience: 'selfheal',
          severity: 'critical',
          reason: 'down',
          host: 'homelab',
          service: 'crypto-agent@BTC_USDT.service',
        },
        annotations: { summary: 'crypto-agent@BTC_USDT.service on homelab is down' },
        startsAt: new Date().toISOString(),
      },
    ];
    const posted = await fetch(`http://127.0.0.1:${amPort}/api/v2/alerts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(alert),
    });
    assert.equal(posted.status, 200);

    // Temporal is not running: the webhook refuses with 503, so Alertmanager keeps the notification.
    const served503 = async () => {
      const m = await metrics.registry.getSingleMetric('selfhealing_webhook_requests_total')!.get();
      return m.values.find((v) => v.labels.code === '503')?.value ?? 0;
    };
    await waitFor(async () => (await served503()) >= 2, {
      what: 'two 503 answers to Alertmanager',
      timeoutMs: 60_000,
    }).catch((err: Error) => {
      throw new Error(`${err.message}\nalertmanager log:\n${amLog.slice(-3000)}`);
    });

    // Temporal comes back (same SQLite file, same port): the next retry is accepted.
    devServer = await startTemporal();
    const client = new Client({ connection });
    const handle = client.workflow.getHandle(workflowIdFor('homelab', 'crypto-agent@BTC_USDT.service'));
    const desc = await waitFor(() => handle.describe().catch(() => null), {
      what: 'the workflow started',
      timeoutMs: 90_000,
    }).catch((err: Error) => {
      throw new Error(`${err.message}\nalertmanager log:\n${amLog.slice(-3000)}`);
    });
    assert.equal(desc.status.name, 'RUNNING');
    const m = await metrics.registry.getSingleMetric('selfhealing_webhook_requests_total')!.get();
    assert.ok((m.values.find((v) => v.labels.code === '200')?.value ?? 0) >= 1, 'a 200 after the 503s');
  });
});
