// Defect 9 (issue 8): `selfheal start` supervises its embedded Temporal dev server. Killed with -9,
// selfheal takes the server with it (or the next start stops the one left behind) and the next
// start comes up on the same port; a dev server killed with -9 under a running selfheal comes back,
// is reported loudly, and alerts get through again. The real built CLI and the real dev server.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/config';
import { temporalCliPath } from '../../src/temporal/binaries';
import { alive, DevServer, pidFileOf } from '../../src/temporal/dev-server';
import { CliProcess, ROOT } from '../helpers/cli';
import { tempDir } from '../helpers/config';
import { freePorts } from '../helpers/ports';
import { waitFor } from '../helpers/wait';

const dir = tempDir();
const dataDir = join(dir, 'data');
let apiPort: number;
let temporalPort: number;
let configFile: string;
let proc: CliProcess | null = null;

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
const serverPid = () => Number(readFileSync(pidFileOf(dataDir), 'utf8').trim());
const api = (path: string, init?: RequestInit) =>
  fetch(`http://127.0.0.1:${apiPort}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });

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

async function alertGetsThrough(service: string): Promise<void> {
  const token = readFileSync(join(dataDir, 'secrets', 'api-token'), 'utf8').trim();
  const body = JSON.stringify({
    version: '4',
    status: 'firing',
    alerts: [{ status: 'firing', labels: { alertname: 'ServiceStalled', service, host: 'homelab' } }],
  });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  // The webhook answers 200 once Temporal took the signal (a 5xx meanwhile is Alertmanager's cue to resend).
  await waitFor(async () => (await api('/selfheal/trigger', { method: 'POST', headers, body })).status === 200, {
    what: 'the webhook to accept the alert',
    timeoutMs: 60_000,
    intervalMs: 500,
  });
  await waitFor(
    async () =>
      (await (await api('/metrics')).text()).includes(
        `selfhealing_service_status{host="homelab",service="${service}"} 1`,
      ),
    { what: `HEALING for ${service} in /metrics`, timeoutMs: 30_000 },
  );
}

before(async () => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--quiet'], { cwd: ROOT, stdio: 'inherit' });
  [apiPort, temporalPort] = await freePorts(2);
  const [uiPort] = await freePorts(1);
  configFile = join(dir, 'selfheal.yaml');
  writeFileSync(
    configFile,
    `temporal: { dataDir: ${dataDir}, port: ${temporalPort}, uiPort: ${uiPort} }
api: { listen: "127.0.0.1:${apiPort}" }
worker: { temporalMetrics: "", metrics: "" }
policy: { validationWindow: 1h }
services:
  - { name: a.service, host: homelab }
  - { name: b.service, host: homelab }
  - { name: c.service, host: homelab }
`,
  );
});

after(async () => {
  await proc?.interrupt(5_000);
  try {
    if (alive(serverPid())) process.kill(serverPid(), 'SIGKILL');
  } catch {
    // no pid file: nothing left
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('selfheal start supervises its embedded Temporal', () => {
  it('takes the dev server with it when killed with -9, and the next start comes up on the same port', async () => {
    proc = await startSelfheal();
    const pid = serverPid();
    assert.ok(alive(pid), 'the dev server runs, its pid in the state folder');
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    assert.ok(environ.includes('GOMEMLIMIT=400MiB'), 'the embedded server runs with a soft memory limit');
    proc.child.kill('SIGKILL');
    await proc.exited;
    await waitFor(() => !alive(pid), { what: `dev server pid ${pid} to die with selfheal`, timeoutMs: 15_000 });
    proc = await startSelfheal();
    assert.equal((await api('/readyz')).status, 200);
    await alertGetsThrough('a.service');
  });

  it('keeps the user\'s own GOMEMLIMIT for the embedded server ("off" included), else a 400 MiB soft limit', () => {
    assert.equal(DevServer.env({ PATH: '/bin' }).GOMEMLIMIT, '400MiB');
    assert.equal(DevServer.env({ PATH: '/bin' }).PATH, '/bin');
    assert.equal(DevServer.env({ GOMEMLIMIT: '1GiB' }).GOMEMLIMIT, '1GiB');
    assert.equal(DevServer.env({ GOMEMLIMIT: 'off' }).GOMEMLIMIT, 'off');
  });

  it('stops a dev server an earlier run left behind instead of failing with "port in use"', async () => {
    assert.equal(await proc!.interrupt(), 0, proc!.output);
    proc = null;
    // A dev server without a parent to die with (an older selfheal, or no setpriv): as start would run it.
    const config = parseConfig(readFileSync(configFile, 'utf8'), { source: configFile, cwd: dir, env: {} });
    const orphan = spawn(temporalCliPath()!, DevServer.args(DevServer.optionsFor(config)), {
      stdio: 'ignore',
      detached: true,
    });
    orphan.unref();
    writeFileSync(pidFileOf(dataDir), `${orphan.pid}\n`);
    await waitFor(() => listening(temporalPort), { what: 'the left-behind server to listen', timeoutMs: 60_000 });
    proc = await startSelfheal();
    assert.match(proc.stdout, new RegExp(`left behind \\(pid ${orphan.pid}`));
    assert.equal(alive(orphan.pid!), false, 'the left-behind server was stopped');
    assert.notEqual(serverPid(), orphan.pid);
  });

  it('restarts a dev server killed with -9 under it, says so loudly, and alerts get through again', async () => {
    const pid = serverPid();
    process.kill(pid, 'SIGKILL');
    await waitFor(() => /ERROR the embedded Temporal dev server exited unexpectedly/.test(proc!.stdout), {
      what: 'the loud log line',
      timeoutMs: 15_000,
    });
    await waitFor(() => /the embedded Temporal dev server is back/.test(proc!.stdout), {
      what: 'the dev server to come back',
      timeoutMs: 90_000,
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${proc!.output}`);
    });
    assert.notEqual(serverPid(), pid);
    assert.equal(proc!.child.exitCode, null, 'selfheal still runs');
    const metrics = await waitFor(
      async () => {
        const text = await (await api('/metrics')).text();
        return /^selfhealing_temporal_up 1$/m.test(text) ? text : null;
      },
      { what: 'selfhealing_temporal_up 1 again', timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.match(metrics, /^selfhealing_embedded_temporal_restarts_total 1$/m);
    await alertGetsThrough('b.service');
    assert.equal(await proc!.interrupt(), 0, proc!.output);
    proc = null;
    assert.equal(existsSync(pidFileOf(dataDir)), false, 'the pid file goes with the server');
  });
});
