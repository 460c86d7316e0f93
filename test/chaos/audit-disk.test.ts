// The chaos suite, the audit log's disk (issue 8): the control worker's audit folder is a tiny tmpfs
// in the worker's own mount namespace (it vanishes with the process, nothing to clean up on the
// host), filled to the last byte, then remounted read-only. Remediation goes on undelayed, the
// counters count, the log says it is not writable; once the disk is fixed the held-back lines land.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditRecord } from '../../src/activities/audit';
import { parseDuration } from '../../src/policy/duration';
import { CHAOS_POLICY, Cluster } from './cluster';

const WINDOW_MS = parseDuration(CHAOS_POLICY.validationWindow) ?? 0;

const UNIT = 'audit-disk.service';
let cluster: Cluster;
let root = '';

before(async () => {
  cluster = await Cluster.start([{ name: UNIT }]);
  await cluster.systemd.systemctl('start', UNIT);
  const auditDir = dirname(cluster.auditFile);
  // The control worker again, in a mount namespace of its own with a 64 KiB tmpfs on the audit folder.
  await cluster.crash('control', {
    wrap: [
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount -t tmpfs -o size=64k tmpfs "$0" && exec "$@"',
      auditDir,
    ],
  });
  // The worker's view of the file system, from outside its namespace.
  root = `/proc/${cluster.parts.control.child!.pid}/root`;
});

after(async () => {
  await cluster?.stop();
});

const metric = async (name: string, service?: string) =>
  (await cluster.metrics())
    .filter((s) => s.name === name && (!service || s.labels.service === service))
    .reduce((a, s) => a + s.value, 0);

function workerAudit(): AuditRecord[] {
  try {
    return readFileSync(join(root, cluster.auditFile), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditRecord);
  } catch {
    return [];
  }
}

/** Stops the unit, fires the alert, and waits for the incident to close; returns how long it took. */
async function incident(n: number): Promise<number> {
  await cluster.systemd.systemctl('stop', UNIT);
  const before = cluster.starts(UNIT);
  const t0 = Date.now();
  await cluster.fireUntilAccepted(UNIT);
  await cluster.until(
    async () => {
      const s = await cluster.state(UNIT);
      return s?.phase === 'idle' && s.totals.incidents === n && s.totals.restarts === n ? s : null;
    },
    `incident ${n} healed`,
    WINDOW_MS + 60_000,
  );
  assert.equal(cluster.starts(UNIT) - before, 1, 'restarted exactly once');
  return Date.now() - t0;
}

describe('chaos: the audit log on a full, then read-only, file system', () => {
  it('a full disk delays nothing, the counters count, the log recovers once there is room', async () => {
    const fill = join(root, dirname(cluster.auditFile), 'fill');
    // Fill the tmpfs to the last byte (ENOSPC ends the write).
    try {
      writeFileSync(fill, Buffer.alloc(1024 * 1024, 1));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    const took = await incident(1);
    // The validation window, a start of 2 s, 2 s of stability: nothing waits on the disk (the old retry
    // held every decision for minutes).
    assert.ok(took < WINDOW_MS + 30_000, `incident took ${took} ms`);
    assert.equal(await metric('selfhealing_restarts_total', UNIT), 1);
    assert.equal(await metric('selfhealing_audit_log_writable'), 0);
    assert.ok((await metric('selfhealing_audit_write_failures_total')) > 0);
    assert.ok((await metric('selfhealing_audit_backlog_lines')) > 0);
    assert.equal(
      workerAudit().filter((r) => r.service === UNIT).length,
      0,
      'nothing could be written while the disk was full',
    );
    process.stderr.write(`chaos: audit on a full disk: incident took ${took} ms\n`);

    rmSync(fill);
    await cluster.until(async () => (await metric('selfhealing_audit_log_writable')) === 1, 'log writable', 60_000);
    const lines = await cluster.until(
      () => {
        const l = workerAudit().filter((r) => r.service === UNIT);
        return l.some((r) => r.event === 'incident-closed') ? l : null;
      },
      'the held-back lines in the log',
      30_000,
    );
    const events: string[] = lines.map((r) => r.event);
    for (const e of ['incident-opened', 'recheck', 'restart', 'attempt-finished', 'incident-closed'])
      assert.ok(events.includes(e), `${e} in ${events.join(', ')}`);
    assert.equal(await metric('selfhealing_audit_backlog_lines'), 0);
  });

  it('a read-only remount delays nothing either, and the log recovers when writable again', async () => {
    const pid = String(cluster.parts.control.child!.pid);
    const dir = dirname(cluster.auditFile);
    execFileSync('nsenter', ['-t', pid, '-m', 'mount', '-o', 'remount,ro', dir]);
    const took = await incident(2);
    assert.ok(took < WINDOW_MS + 30_000, `incident took ${took} ms`);
    assert.equal(await metric('selfhealing_restarts_total', UNIT), 2);
    assert.equal(await metric('selfhealing_audit_log_writable'), 0);
    process.stderr.write(`chaos: audit on a read-only disk: incident took ${took} ms\n`);
    execFileSync('nsenter', ['-t', pid, '-m', 'mount', '-o', 'remount,rw', dir]);
    await cluster.until(
      () => workerAudit().filter((r) => r.service === UNIT && r.event === 'incident-closed').length === 2,
      'the second incident in the log',
      60_000,
    );
    assert.equal(await metric('selfhealing_audit_log_writable'), 1);
  });
});
