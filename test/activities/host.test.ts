// The host activities on their own, with the in-memory service manager and a real state folder:
// the allowlist, restart idempotency per attempt and per workflow run, failures the workflow must
// read as permanent, and verification's verdicts. Real systemd runs them in
// test/integration/systemd-restart.test.ts.
import assert from 'node:assert/strict';
import { readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/activity';
import { createHostActivities } from '../../src/activities/host';
import { HOST_ERRORS } from '../../src/workflows/definitions';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { mockActivityEnv, runActivity } from '../helpers/temporal';

const config = testConfig(`
services:
  - { name: a.service, host: h1 }
  - { name: b.service, host: h1 }
  - { name: c.service, host: h2 }
`);

function host(opts: { stateDir?: string; now?: () => number } = {}) {
  const fake = new FakeManager();
  const stateDir = opts.stateDir ?? tempDir('host-state-');
  const acts = createHostActivities({
    config,
    host: 'h1',
    managers: () => fake,
    stateDir,
    pollIntervalMs: 5,
    now: opts.now,
  });
  return { fake, acts, stateDir };
}

const run = (runId: string, attempt = 1) =>
  mockActivityEnv({ attempt, workflowExecution: { workflowId: 'selfheal/h1/a.service', runId } });
const ref = (service = 'a.service', attemptId = 'inc-1-1') => ({
  workflowId: `selfheal/h1/${service}`,
  host: 'h1',
  service,
  attemptId,
});
const permanent = (type: string) => (err: unknown) =>
  err instanceof ApplicationFailure && err.type === type && err.nonRetryable === true;

describe('host activities: the allowlist', () => {
  it('refuses a service not configured for this very host, or an unsafe name, before asking the manager', async () => {
    const { fake, acts } = host();
    const env = run('r1');
    const cases: [string, string, string][] = [
      ['c.service', 'h1', HOST_ERRORS.notAllowed], // configured, but on h2
      ['c.service', 'h2', HOST_ERRORS.notAllowed], // this worker serves h1
      ['sshd.service', 'h1', HOST_ERRORS.notAllowed],
      ['a.service --now', 'h1', HOST_ERRORS.invalidUnit],
      ['-a.service', 'h1', HOST_ERRORS.invalidUnit],
    ];
    for (const [service, h, type] of cases) {
      const r = { ...ref(service), host: h };
      await assert.rejects(runActivity(env, acts.checkService, r), permanent(type), `check ${service}@${h}`);
      await assert.rejects(runActivity(env, acts.restartService, r), permanent(type), `restart ${service}@${h}`);
      const verify = { ...r, beforeFingerprint: 'x', timeoutMs: 10, stableMs: 0 };
      await assert.rejects(runActivity(env, acts.verifyService, verify), permanent(type), `verify ${service}@${h}`);
    }
    assert.deepEqual(fake.calls, []);
  });
});

describe('host activities: restart', () => {
  it('restarts once per attempt of one workflow run, again for a new attempt or a new run', async () => {
    const { fake, acts } = host();
    const first = await runActivity(run('r1'), acts.restartService, ref());
    assert.equal(first.outcome, 'restarted');
    assert.equal(first.after.activeState, 'active');
    const again = await runActivity(run('r1', 2), acts.restartService, ref());
    assert.equal(again.outcome, 'already-restarted');
    assert.equal(again.beforeFingerprint, first.beforeFingerprint);
    assert.equal(fake.restartsOf('a.service'), 1);
    await runActivity(run('r1'), acts.restartService, ref('a.service', 'inc-1-2'));
    // Attempt ids start again after a reset or a recreated workflow: the run tells them apart.
    await runActivity(run('r2'), acts.restartService, ref());
    assert.equal(fake.restartsOf('a.service'), 3);
  });

  it('restarts when an earlier run of the attempt stopped before the restart took effect', async () => {
    const { fake, acts } = host();
    // The marker is written, then the restart command fails: the unit was not started since.
    fake.set('b.service', { restartCommandFails: true });
    await assert.rejects(runActivity(run('r1'), acts.restartService, ref('b.service')));
    fake.set('b.service', { restartCommandFails: false });
    const retried = await runActivity(run('r1', 2), acts.restartService, ref('b.service'));
    assert.equal(retried.outcome, 'restarted');
    assert.equal(fake.restartsOf('b.service'), 1);
  });

  it('reports a failed restart command as a permanent RestartFailed with its stderr', async () => {
    const { fake, acts } = host();
    fake.set('a.service', { restartCommandFails: true });
    await assert.rejects(
      runActivity(run('r1'), acts.restartService, ref()),
      (err: unknown) =>
        permanent(HOST_ERRORS.restartFailed)(err) &&
        /Job failed/.test((err as ApplicationFailure).message) &&
        (err as ApplicationFailure).details?.[0] === 'Job failed',
    );
  });

  it('does not restart when it cannot write the restart marker (HostStateUnwritable)', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a-file'), '');
    const { fake, acts } = host({ stateDir: join(dir, 'a-file', 'host-state') });
    await assert.rejects(
      runActivity(run('r1'), acts.restartService, ref()),
      (err: unknown) =>
        permanent(HOST_ERRORS.hostStateUnwritable)(err) && /worker\.stateDir/.test((err as Error).message),
    );
    assert.equal(fake.restartsOf('a.service'), 0);
  });

  it('drops restart markers older than a day when it writes a new one', async () => {
    let now = Date.now();
    const { acts, stateDir } = host({ now: () => now });
    await runActivity(run('r1'), acts.restartService, ref());
    const markers = join(stateDir, 'restart-markers');
    const [old] = readdirSync(markers);
    const dayAgo = (Date.now() - 25 * 3_600_000) / 1000;
    utimesSync(join(markers, old), dayAgo, dayAgo);
    now = Date.now();
    await runActivity(run('r1'), acts.restartService, ref('a.service', 'inc-2-1'));
    const left = readdirSync(markers);
    assert.equal(left.length, 1);
    assert.notEqual(left[0], old);
  });
});

describe('host activities: verification', () => {
  const verify = (acts: ReturnType<typeof host>['acts'], beforeFingerprint: string, timeoutMs = 200) =>
    runActivity(run('r1'), acts.verifyService, { ...ref(), beforeFingerprint, timeoutMs, stableMs: 0 });

  it('verifies a unit that runs again as a new process', async () => {
    const { acts } = host();
    const r = await runActivity(run('r1'), acts.restartService, ref());
    const v = await verify(acts, r.beforeFingerprint);
    assert.equal(v.ok, true);
    assert.equal(v.reason, 'verified');
    assert.match(v.detail, /^active \(running\), pid \d+$/);
  });

  it('fails a unit that was never started since the fingerprint (not-restarted), or is down (not-active)', async () => {
    const { fake, acts } = host();
    const before = await runActivity(run('r1'), acts.checkService, ref());
    const unchanged = await verify(acts, `${before.invocationId}|${before.activeEnterMonotonicUs}|${before.mainPid}`);
    assert.equal(unchanged.ok, false);
    assert.equal(unchanged.reason, 'not-restarted');
    const r = await runActivity(run('r1'), acts.restartService, ref());
    fake.stop('a.service');
    const down = await verify(acts, r.beforeFingerprint);
    assert.equal(down.ok, false);
    assert.equal(down.reason, 'not-active');
    assert.match(down.detail, /^inactive\/dead after \d+s$/);
  });

  it('fails at once a unit that failed on start', async () => {
    const { fake, acts } = host();
    fake.set('a.service', { failsOnStart: true });
    const r = await runActivity(run('r1'), acts.restartService, ref());
    const v = await verify(acts, r.beforeFingerprint, 60_000);
    assert.equal(v.ok, false);
    assert.equal(v.reason, 'failed');
    assert.ok(v.elapsedMs < 10_000, `${v.elapsedMs} ms`);
  });
});
