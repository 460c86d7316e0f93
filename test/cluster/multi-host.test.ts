// selfheal on a real Temporal cluster (the Temporal server on PostgreSQL, test/helpers/temporal-cluster.ts),
// split the way a fleet runs it: a host worker per host (`selfheal worker --host a`, `--host b`, each
// with its own private systemd user manager), two control workers, two API processes serving HTTPS
// with mutual TLS, and a real Alertmanager delivering to both over https (tls_config.ca_file plus
// a client certificate). Alerts for services on both hosts; one control worker and one API are
// SIGKILLed mid-incident. Nothing is lost, nothing restarts twice (each unit appends to a file on
// every start: ExecStartPre), and every restart runs on its own host's worker.
// Run by `npm run test:cluster` (not `npm test`: it needs the server built by scripts/cluster.mjs).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { temporal } from '@temporalio/proto';
import { stringify } from 'yaml';
import { hostTaskQueue, stateQuery, workflowIdFor, type ServiceStateView } from '../../src/workflows/definitions';
import { makeCerts, type TestCerts } from '../helpers/certs';
import { CliProcess } from '../helpers/cli';
import { tempDir } from '../helpers/config';
import { freePorts } from '../helpers/ports';
import { UserSystemd } from '../helpers/systemd';
import { clusterUnavailable, TemporalCluster } from '../helpers/temporal-cluster';
import { waitFor } from '../helpers/wait';

const TOKEN = 'cluster-webhook-token-0123456789';
const ADMIN = 'cluster-admin-token-0123456789';
// The same unit name on both hosts: a restart run by the wrong host's worker shows in the other file.
// Four units a host, so the four alerted (half of each host, half of the fleet) stay within the
// default breaker (it trips when more than half of a scope of at least 4 services is down).
const UNITS: Record<string, string[]> = {
  a: ['web.service', 'api.service', 'cache.service', 'mail.service'],
  b: ['web.service', 'db.service', 'cache.service', 'mail.service'],
};
const FIRST = [
  ['a', 'web.service'],
  ['b', 'web.service'],
] as const;
const SECOND = [
  ['a', 'api.service'],
  ['b', 'db.service'],
] as const;
const EventType = temporal.api.enums.v1.EventType;

const skip = clusterUnavailable();
const dir = tempDir('selfheal-multihost-');
let cluster: TemporalCluster;
let certs: TestCerts;
const systemd: Record<string, UserSystemd> = {};
const procs: Record<string, CliProcess> = {};
let apiPorts: number[] = [];
let amPort: number;
let alertmanager: ChildProcess | null = null;
let amLog = '';
let connection: Connection;
let client: Client;

const startsFile = (host: string, unit: string) => join(dir, 'starts', host, unit);
const starts = (host: string, unit: string) =>
  existsSync(startsFile(host, unit)) ? readFileSync(startsFile(host, unit), 'utf8').trim().split('\n').length : 0;

function configYaml(): string {
  return stringify({
    temporal: { address: cluster.address, dataDir: join(dir, 'data') },
    api: {
      listen: '${SELFHEAL_API_LISTEN:-127.0.0.1:1}',
      token: TOKEN,
      adminToken: ADMIN,
      temporalTimeout: '5s',
      tls: { certFile: certs.certFile, keyFile: certs.keyFile, clientCaFile: certs.caFile },
    },
    audit: { file: join(dir, 'audit-${SELFHEAL_PART}.log') },
    worker: { temporalMetrics: '', metrics: '', stateDir: join(dir, 'state-${SELFHEAL_PART}') },
    policy: {
      validationWindow: '15s',
      cooldown: '1s',
      verifyTimeout: '20s',
      verifyStableFor: '2s',
      hostTimeout: '10s',
    },
    services: Object.entries(UNITS).flatMap(([host, units]) =>
      units.map((name) => ({ name, host, manager: 'systemd-user' })),
    ),
  });
}

function alertmanagerYaml(tokenFile: string): string {
  const tls = { ca_file: certs.caFile, cert_file: certs.clientCertFile, key_file: certs.clientKeyFile };
  return stringify({
    route: {
      receiver: 'selfheal',
      group_by: ['host', 'service'],
      group_wait: '1s',
      group_interval: '2s',
      repeat_interval: '1h',
    },
    receivers: [
      {
        name: 'selfheal',
        webhook_configs: apiPorts.map((p) => ({
          url: `https://127.0.0.1:${p}/selfheal/trigger`,
          http_config: { authorization: { credentials_file: tokenFile }, tls_config: tls },
        })),
      },
    ],
  });
}

function start(part: string, args: string[], env: Record<string, string> = {}): CliProcess {
  const p = CliProcess.start([...args, '--config', join(dir, 'selfheal.yaml')], {
    env: { SELFHEAL_PART: part, ...env },
  });
  procs[part] = p;
  return p;
}

async function running(part: string): Promise<void> {
  const p = procs[part];
  await waitFor(
    () => {
      if (p.child.exitCode !== null) throw new Error(`${part} exited (${p.child.exitCode}):\n${p.output}`);
      return p.stdout.includes('selfheal is running');
    },
    { what: `${part} running`, timeoutMs: 90_000, intervalMs: 200 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${p.output}`);
  });
}

/** GET over HTTPS with the client certificate; the status code. */
function httpsGet(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca: readFileSync(certs.caFile),
        cert: readFileSync(certs.clientCertFile),
        key: readFileSync(certs.clientKeyFile),
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function fire(alerts: readonly (readonly [string, string])[]): Promise<void> {
  for (const [host, unit] of alerts) await systemd[host].systemctl('stop', unit);
  const body = alerts.map(([host, service]) => ({
    labels: { alertname: 'ServiceStalled', severity: 'critical', host, service },
    startsAt: new Date().toISOString(),
  }));
  const res = await fetch(`http://127.0.0.1:${amPort}/api/v2/alerts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.text());
}

async function state(host: string, unit: string): Promise<ServiceStateView | null> {
  return client.workflow
    .getHandle(workflowIdFor(host, unit))
    .query(stateQuery)
    .catch(() => null);
}

/** Writes every workflow's history beside the test's files (for replay when something fails); the folder. */
async function dumpHistories(): Promise<string> {
  const out = join(dir, 'histories');
  mkdirSync(out, { recursive: true });
  for (const [host, units] of Object.entries(UNITS)) {
    for (const unit of units) {
      const history = await client.workflow
        .getHandle(workflowIdFor(host, unit))
        .fetchHistory()
        .catch(() => null);
      if (history) writeFileSync(join(out, `${host}-${unit}.json`), historyToJSON(history) + '\n');
    }
  }
  return out;
}

const logs = () =>
  Object.entries(procs)
    .map(([k, p]) => `--- ${k} ---\n${p.output.slice(-3000)}`)
    .join('\n') + `\n--- alertmanager ---\n${amLog.slice(-3000)}`;

before(async () => {
  if (skip) return;
  cluster = await TemporalCluster.start();
  certs = makeCerts(dir);
  for (const host of Object.keys(UNITS)) {
    systemd[host] = await UserSystemd.start();
    mkdirSync(join(dir, 'starts', host), { recursive: true });
    for (const unit of UNITS[host]) {
      const unitText = `[Service]\nExecStartPre=/bin/sh -c 'echo start >> ${startsFile(host, unit)}'\nExecStart=/bin/sleep 3600\n`;
      await systemd[host].addUnit(unit, unitText);
      await systemd[host].systemctl('start', unit);
    }
  }
  writeFileSync(join(dir, 'selfheal.yaml'), configYaml());
  [amPort, ...apiPorts] = await freePorts(3);
  // control-2 joins once the first incidents run on control-1 (see the test), so the kill below
  // provably moves live workflows from one control worker to the other.
  start('control-1', ['worker', '--control']);
  for (const host of Object.keys(UNITS)) start(`host-${host}`, ['worker', '--host', host], systemd[host].env);
  apiPorts.forEach((port, i) => start(`api-${i + 1}`, ['api'], { SELFHEAL_API_LISTEN: `127.0.0.1:${port}` }));
  for (const part of Object.keys(procs)) await running(part);
  for (const port of apiPorts) {
    await waitFor(async () => (await httpsGet(`https://127.0.0.1:${port}/readyz`)) === 200, { what: 'API ready' });
  }
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, TOKEN + '\n', { mode: 0o600 });
  writeFileSync(join(dir, 'alertmanager.yml'), alertmanagerYaml(tokenFile));
  alertmanager = spawn(
    'prometheus-alertmanager',
    [
      `--config.file=${join(dir, 'alertmanager.yml')}`,
      `--storage.path=${join(dir, 'am')}`,
      `--web.listen-address=127.0.0.1:${amPort}`,
      '--cluster.listen-address=',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  alertmanager.stderr?.on('data', (d: Buffer) => (amLog = (amLog + d.toString()).slice(-20_000)));
  await waitFor(async () => (await fetch(`http://127.0.0.1:${amPort}/-/ready`)).ok, { what: 'Alertmanager ready' });
  connection = await Connection.connect({ address: cluster.address });
  client = new Client({ connection });
});

after(async () => {
  if (alertmanager && alertmanager.exitCode === null) {
    const exited = new Promise((r) => alertmanager!.once('exit', r));
    alertmanager.kill('SIGTERM');
    await exited;
  }
  await Promise.all(Object.values(procs).map((p) => p.interrupt(20_000)));
  await connection?.close();
  for (const s of Object.values(systemd)) await s.stop();
  await cluster?.stop();
});

describe(
  'a fleet on a Temporal cluster (PostgreSQL), two hosts, redundant control workers and APIs',
  { skip: skip ?? false },
  () => {
    it(
      'loses nothing and restarts once, on the right host, when a control worker and an API are killed mid-incident',
      { timeout: 240_000 },
      async (t) => {
        for (const host of Object.keys(UNITS)) for (const unit of UNITS[host]) assert.equal(starts(host, unit), 1);
        const t0 = Date.now();
        const mark = (what: string) => t.diagnostic(`${what} at +${((Date.now() - t0) / 1000).toFixed(1)}s`);

        await fire(FIRST);
        // Mid-incident: both incidents opened and waiting out their validation window.
        await waitFor(
          async () => (await Promise.all(FIRST.map(([h, u]) => state(h, u)))).every((s) => s?.phase === 'validating'),
          { what: 'first incidents validating', timeoutMs: 60_000, intervalMs: 200 },
        ).catch((err: Error) => assert.fail(`${err.message}\n${logs()}`));
        start('control-2', ['worker', '--control']);
        await running('control-2');
        const atKill = await Promise.all(FIRST.map(([h, u]) => state(h, u)));
        procs['control-1'].child.kill('SIGKILL');
        procs['api-1'].child.kill('SIGKILL');
        await Promise.all([procs['control-1'].exited, procs['api-1'].exited]);
        assert.ok(
          atKill.every((s) => s && s.phase !== 'idle'),
          `mid-incident at the kill: ${atKill.map((s) => s?.phase)}`,
        );
        mark('control-1 and api-1 killed');
        // New alerts while one API is down: Alertmanager's delivery to it fails, the other API takes them.
        await fire(SECOND);

        const all = [...FIRST, ...SECOND];
        const done = await waitFor(
          async () => {
            const states = await Promise.all(all.map(([h, u]) => state(h, u)));
            return states.every((s) => s?.phase === 'idle' && s.totals.restarts === 1) ? states : null;
          },
          { what: 'every incident restarted once and closed', timeoutMs: 150_000, intervalMs: 500 },
        ).catch(async (err: Error) => assert.fail(`${err.message}\nhistories in ${await dumpHistories()}\n${logs()}`));
        mark('every incident closed');
        for (const s of done) assert.equal(s!.recentAttempts[0].result, 'success');

        // Exactly one restart per alerted unit (two starts: the first and the restart), none elsewhere.
        const expected = (host: string, unit: string) => (all.some(([h, u]) => h === host && u === unit) ? 2 : 1);
        for (const host of Object.keys(UNITS)) {
          for (const unit of UNITS[host]) {
            assert.equal(starts(host, unit), expected(host, unit), `${host}/${unit} starts`);
            assert.equal((await systemd[host].show(unit)).ActiveState, 'active', `${host}/${unit} active`);
          }
        }

        // Every restart ran on its own host's worker (the worker identity is pid@hostname); the first
        // incidents, begun on control-1, were finished by control-2; no workflow task failed (a
        // nondeterministic replay on the surviving worker would).
        const pid = (part: string) => String(procs[part].child.pid);
        for (const [host, unit] of all) {
          const history = await client.workflow.getHandle(workflowIdFor(host, unit)).fetchHistory();
          const events = history.events ?? [];
          const failedTasks = events.filter((e) => e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED);
          if (failedTasks.length) {
            assert.fail(
              `${host}/${unit}: ${failedTasks.length} workflow task(s) failed; histories in ${await dumpHistories()}`,
            );
          }
          const deciders = new Set(
            events.map((e) => e.workflowTaskCompletedEventAttributes?.identity?.split('@')[0]).filter(Boolean),
          );
          if (FIRST.some(([h, u]) => h === host && u === unit)) {
            assert.deepEqual(
              [...deciders].sort(),
              [pid('control-1'), pid('control-2')].sort(),
              `${host}/${unit} deciders`,
            );
          }
          const restarts = events.filter(
            (e) =>
              e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
              e.activityTaskScheduledEventAttributes?.activityType?.name === 'restartService',
          );
          assert.equal(restarts.length, 1, `${host}/${unit}: one restartService scheduled`);
          const scheduled = restarts[0];
          assert.equal(scheduled.activityTaskScheduledEventAttributes?.taskQueue?.name, hostTaskQueue(host));
          const started = events.find(
            (e) => e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() === scheduled.eventId?.toString(),
          );
          const identity = started?.activityTaskStartedEventAttributes?.identity ?? '';
          assert.equal(identity.split('@')[0], pid(`host-${host}`), `${host}/${unit} restarted by ${identity}`);
        }

        // Alertmanager reached the surviving API over HTTPS with its client certificate.
        const metrics = await new Promise<string>((resolve, reject) => {
          const req = request(
            `https://127.0.0.1:${apiPorts[1]}/metrics`,
            {
              ca: readFileSync(certs.caFile),
              cert: readFileSync(certs.clientCertFile),
              key: readFileSync(certs.clientKeyFile),
            },
            (res) => {
              let body = '';
              res.on('data', (d: Buffer) => (body += d.toString()));
              res.on('end', () => resolve(body));
            },
          );
          req.on('error', reject);
          req.end();
        });
        assert.match(metrics, /selfhealing_webhook_requests_total\{[^}]*code="200"[^}]*\} [1-9]/);
      },
    );
  },
);
