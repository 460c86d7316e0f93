// `selfheal start` as a user runs it: built code, the embedded Temporal dev server with its SQLite
// file, both workers and the API; a clear banner; Ctrl-C stops everything; state and the state
// gauges survive a restart.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CliProcess, ROOT } from '../helpers/cli';
import { tempDir } from '../helpers/config';
import { freePorts } from '../helpers/ports';
import { waitFor } from '../helpers/wait';

const dir = tempDir();
let apiPort: number;
let temporalPort: number;
let uiPort: number;
let sdkMetricsPort: number;
let configFile: string;
let proc: CliProcess | null = null;

function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port, timeout: 2_000 });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function startSelfheal(): Promise<CliProcess> {
  const p = CliProcess.start(['start', '--config', configFile, '--host', 'homelab'], { fromSource: false });
  await waitFor(() => p.stdout.includes('Press Ctrl-C to stop.') || p.child.exitCode !== null, {
    what: 'the start banner',
    timeoutMs: 90_000,
  }).catch((err: Error) => {
    throw new Error(`${err.message}\n${p.output}`);
  });
  assert.equal(p.child.exitCode, null, `selfheal start exited early:\n${p.output}`);
  return p;
}

const api = (path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${apiPort}${path}`, init);

before(async () => {
  // Built code: the workers load dist/workflow-bundle.js instead of bundling at start.
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  [apiPort, temporalPort, uiPort, sdkMetricsPort] = await freePorts(4);
  configFile = join(dir, 'selfheal.yaml');
  writeFileSync(
    configFile,
    `temporal: { dataDir: ${join(dir, 'data')}, port: ${temporalPort}, uiPort: ${uiPort} }
api: { listen: "127.0.0.1:${apiPort}" }
worker: { temporalMetrics: "127.0.0.1:${sdkMetricsPort}", metrics: "" }
policy: { validationWindow: 1h }
services:
  - { name: jira-worker.service, host: homelab }
  - { name: crypto-agent@BTC_USDT.service, host: homelab }
`,
  );
});

after(async () => {
  await proc?.interrupt(5_000);
});

/** This machine's own non-loopback IPv4 addresses. */
function externalAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === 'IPv4' && !a.internal)
    .map((a) => a!.address);
}

describe('selfheal start', () => {
  it('comes up with a clear banner and serves the API on the embedded Temporal', async () => {
    proc = await startSelfheal();
    const out = proc.stdout;
    assert.match(out, new RegExp(`API +http://127\\.0\\.0\\.1:${apiPort}`));
    assert.match(out, new RegExp(`Temporal UI +http://127\\.0\\.0\\.1:${uiPort}/namespaces/default/workflows`));
    assert.match(out, /Data folder +\S+/);
    assert.match(out, /Host worker +homelab: 2 service\(s\), queue selfheal-host-homelab/);
    assert.match(out, /Tokens +generated/);
    assert.ok(existsSync(join(dir, 'data', 'temporal.db')), 'SQLite file under temporal.dataDir');
    assert.equal((await api('/readyz')).status, 200);

    // The workers' own metrics, from the Temporal SDK runtime's Prometheus exporter.
    assert.match(out, new RegExp(`Worker metrics http://127\\.0\\.0\\.1:${sdkMetricsPort}/metrics`));
    const sdk = await waitFor(
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${sdkMetricsPort}/metrics`)).text();
        return /^temporal_\w+/m.test(text) ? text : null;
      },
      { what: 'temporal_* worker metrics' },
    );
    assert.match(sdk, /task_queue="selfheal-control"/);
  });

  it('keeps the embedded Temporal frontend and its UI on loopback only (they have no authentication)', async (t) => {
    assert.ok(await portOpen(temporalPort), 'the frontend answers on 127.0.0.1');
    const external = externalAddresses();
    if (external.length === 0) return t.skip('this machine has no non-loopback address to try');
    for (const address of external) {
      assert.equal(await portOpen(temporalPort, address), false, `frontend not reachable on ${address}`);
      assert.equal(await portOpen(uiPort, address), false, `UI not reachable on ${address}`);
    }
  });

  it('accepts an alert with the generated token, and Ctrl-C stops everything cleanly', async () => {
    const token = readFileSync(join(dir, 'data', 'secrets', 'api-token'), 'utf8').trim();
    const res = await api('/selfheal/trigger', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        version: '4',
        status: 'firing',
        alerts: [
          {
            status: 'firing',
            labels: { alertname: 'ServiceStalled', service: 'jira-worker.service', host: 'homelab' },
          },
        ],
      }),
    });
    assert.equal(res.status, 200, await res.text());
    await waitFor(
      async () =>
        (await (await api('/metrics')).text()).includes(
          'selfhealing_service_status{host="homelab",service="jira-worker.service"} 1',
        ),
      {
        what: 'HEALING in /metrics',
      },
    );
    const code = await proc!.interrupt();
    assert.equal(code, 0, proc!.output);
    assert.match(proc!.stdout, /selfheal stopped\./);
    assert.equal(await portOpen(apiPort), false, 'API closed');
    assert.equal(await portOpen(temporalPort), false, 'embedded Temporal stopped');
    proc = null;
  });

  it('keeps workflow state across a restart, and the state gauges show it on the first scrape', async () => {
    proc = await startSelfheal();
    // First scrape after the restart: the true state from the durable workflow, not zeros.
    const metrics = await (await api('/metrics')).text();
    assert.match(metrics, /selfhealing_service_status\{host="homelab",service="jira-worker.service"\} 1/);
    assert.match(metrics, /selfhealing_service_status\{host="homelab",service="crypto-agent@BTC_USDT.service"\} 0/);
    const admin = readFileSync(join(dir, 'data', 'secrets', 'admin-token'), 'utf8').trim();
    const res = await api('/services/homelab/jira-worker.service', { headers: { authorization: `Bearer ${admin}` } });
    const body = (await res.json()) as { state: { phase: string; incident: { id: string } | null } };
    assert.equal(body.state.phase, 'validating', 'the incident opened before the restart is still there');
    assert.equal(body.state.incident?.id, 'inc-1');
    // `promtool check metrics` finds nothing to complain about in /metrics.
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    assert.equal(lint.status, 0, `${lint.stdout}${lint.stderr}`);
    assert.equal(`${lint.stdout}${lint.stderr}`.trim(), '');
    assert.equal(await proc.interrupt(), 0, proc.output);
    proc = null;
  });
});
