// Real restarts: a private systemd user manager, the real Temporal dev server, the real workflow,
// the real host worker running `systemctl --user`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createHostActivities } from '../../src/activities/host';
import { defaultManagers, execRunner, type CommandRunner } from '../../src/activities/service-manager';
import type { Config } from '../../src/config/config';
import { signalWithStartService } from '../../src/client/signals';
import { alertFiringSignal, stateQuery, workflowIdFor, type ServiceStateView } from '../../src/workflows/definitions';
import { tempDir, testConfig } from '../helpers/config';
import { UserSystemd } from '../helpers/systemd';
import { devServerEnv, mockActivityEnv, runActivity, startWorkers, type RunningWorkers } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

const HOST = 'itest';
let systemd: UserSystemd;
let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let config: Config;
const dir = tempDir();
const calls: string[][] = [];
// The real runner, recording argv so tests can prove what was (not) executed.
const recording: CommandRunner = (argv, opts) => {
  calls.push([...argv]);
  return execRunner(argv, opts);
};

/** The real host activities, with the recording runner, called directly. */
const hostActivities = () =>
  createHostActivities({ config, host: HOST, managers: defaultManagers(recording), pollIntervalMs: 100 });

before(async () => {
  systemd = await UserSystemd.start();
  // The host worker runs in this process: point its systemctl at the private manager.
  process.env.XDG_RUNTIME_DIR = systemd.runtimeDir;
  await systemd.addUnit('demo.service', '[Unit]\nDescription=demo\n[Service]\nExecStart=/bin/sleep 3600\n');
  await systemd.addUnit('broken.service', '[Unit]\nDescription=always fails\n[Service]\nExecStart=/bin/false\n');
  await systemd.addUnit('idem.service', '[Unit]\nDescription=idempotency\n[Service]\nExecStart=/bin/sleep 3600\n');
  await systemd.systemctl('start', 'demo.service', 'idem.service');
  config = testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
policy: { validationWindow: 1s, cooldown: 1s, verifyTimeout: 20s, verifyStableFor: 1s, hostTimeout: 10s }
services:
  - { name: demo.service, host: ${HOST}, manager: systemd-user }
  - { name: broken.service, host: ${HOST}, manager: systemd-user }
  - { name: idem.service, host: ${HOST}, manager: systemd-user }
`,
    dir,
  );
  env = await devServerEnv();
  workers = await startWorkers(env, config, {
    hosts: [HOST],
    managers: defaultManagers(recording),
    pollIntervalMs: 200,
  });
});

after(async () => {
  await workers?.shutdown();
  await env?.teardown();
  await systemd?.stop();
});

describe('real restart through systemd (user manager) and the real dev server', () => {
  it('restarts a stopped unit through the host worker, verifies it, and audits every decision', async () => {
    const before = await systemd.show('demo.service');
    assert.equal(before.ActiveState, 'active');
    await systemd.systemctl('stop', 'demo.service');
    assert.equal((await systemd.show('demo.service')).ActiveState, 'inactive');

    await signalWithStartService(env.client, config, HOST, 'demo.service', alertFiringSignal, {
      alertnames: ['ServiceStalled'],
    });
    const handle = env.client.workflow.getHandle(workflowIdFor(HOST, 'demo.service'));
    const s = await waitFor(
      async () => {
        const st: ServiceStateView = await handle.query(stateQuery);
        return st.phase === 'idle' && st.totals.restarts === 1 ? st : null;
      },
      { what: 'restart verified', timeoutMs: 60_000, intervalMs: 250 },
    );
    assert.equal(s.recentAttempts[0].result, 'success');
    const after = await systemd.show('demo.service');
    assert.equal(after.ActiveState, 'active');
    assert.notEqual(after.MainPID, before.MainPID);
    assert.notEqual(after.InvocationID, before.InvocationID);
    assert.ok(
      calls.some((c) => c.join(' ') === 'systemctl --user --no-ask-password restart -- demo.service'),
      'systemctl restart ran with argv',
    );

    const lines = readFileSync(config.audit.file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.service === 'demo.service');
    for (const l of lines) {
      for (const k of ['time', 'host', 'service', 'workflowId', 'event', 'decision', 'reason'])
        assert.ok(k in l, `${k} in ${JSON.stringify(l)}`);
    }
    const events = lines.map((l) => `${l.event}:${l.decision}`);
    for (const e of [
      'incident-opened:validate',
      'recheck:confirmed',
      'restart:restart',
      'attempt-finished:recovered',
      'incident-closed:verified',
    ]) {
      assert.ok(events.includes(e), `${e} in ${events.join(', ')}`);
    }
    assert.match(lines.find((l) => l.event === 'recheck').reason, /inactive/);
  });

  it('never restarts twice for one attempt, even when the activity runs again', async () => {
    const acts = hostActivities();
    const ref = { workflowId: 'test/idempotency', host: HOST, service: 'idem.service', attemptId: 'inc-1-1' };
    const menv = mockActivityEnv();
    const before = await systemd.show('idem.service');
    const first = await runActivity(menv, acts.restartService, ref);
    assert.equal(first.outcome, 'restarted');
    const afterFirst = await systemd.show('idem.service');
    assert.notEqual(afterFirst.MainPID, before.MainPID);
    // The same attempt again (as after a worker crash and an activity retry): no second restart.
    const second = await runActivity(mockActivityEnv({ attempt: 2 }), acts.restartService, ref);
    assert.equal(second.outcome, 'already-restarted');
    assert.equal(second.beforeFingerprint, first.beforeFingerprint);
    assert.equal((await systemd.show('idem.service')).MainPID, afterFirst.MainPID, 'not restarted again');
    // A new attempt id is a new restart.
    const third = await runActivity(menv, acts.restartService, { ...ref, attemptId: 'inc-1-2' });
    assert.equal(third.outcome, 'restarted');
    assert.notEqual((await systemd.show('idem.service')).MainPID, afterFirst.MainPID);
  });

  it('verification sees a unit that fails on start as failed', async () => {
    const acts = hostActivities();
    const ref = { workflowId: 'test/broken', host: HOST, service: 'broken.service', attemptId: 'b-1' };
    const menv = mockActivityEnv();
    const r = await runActivity(menv, acts.restartService, ref);
    const v = await runActivity(menv, acts.verifyService, {
      ...ref,
      beforeFingerprint: r.beforeFingerprint,
      timeoutMs: 10_000,
      stableMs: 1_000,
    });
    assert.equal(v.ok, false);
    assert.equal(v.reason, 'failed');
    assert.equal(v.status.activeState, 'failed');
  });

  it('refuses unit names outside the allowlist or with shell metacharacters, executing nothing', async () => {
    const acts = hostActivities();
    const menv = mockActivityEnv();
    const before = calls.length;
    const cases: [string, string, string][] = [
      ['sshd.service', HOST, 'ServiceNotAllowed'],
      ['demo.service;reboot', HOST, 'InvalidUnitName'],
      ['$(touch /tmp/pwned).service', HOST, 'InvalidUnitName'],
      ['demo.service', 'otherhost', 'ServiceNotAllowed'],
    ];
    for (const [service, host, type] of cases) {
      await assert.rejects(
        runActivity(menv, acts.restartService, { workflowId: 'x', host, service, attemptId: 'a' }),
        (err: unknown) => err instanceof ApplicationFailure && err.type === type && err.nonRetryable === true,
        `${service}@${host} → ${type}`,
      );
    }
    assert.equal(calls.length, before, 'no command ran');
  });
});
