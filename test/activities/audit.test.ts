// The audit log and the control activity that writes it (issue 8, defect 3): the log must never
// block a decision, the counters must count what happened whether or not the line could be written,
// and an unwritable log must recover by itself once it is writable again.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AuditLog, type AuditRecord } from '../../src/activities/audit';
import { createControlActivities } from '../../src/activities/control';
import { createMetrics } from '../../src/metrics/metrics';
import type { AuditEvent } from '../../src/workflows/definitions';
import { testConfig, tempDir } from '../helpers/config';

const record = (event: AuditEvent, extra: Partial<AuditRecord> = {}): AuditRecord => ({
  time: new Date().toISOString(),
  host: 'h1',
  service: 'a.service',
  workflowId: 'selfheal/h1/a.service',
  event,
  decision: 'x',
  reason: 'y',
  ...extra,
});

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditRecord);

async function metricValue(metrics: ReturnType<typeof createMetrics>, name: string, labels: Record<string, string>) {
  const m = (await metrics.registry.getSingleMetric(name)?.get())?.values ?? [];
  const hit = m.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return hit?.value ?? 0;
}

describe('audit log', () => {
  it('recovers once its folder can be created, instead of failing forever on a cached mkdir error', async () => {
    const dir = tempDir();
    const blocked = join(dir, 'logs');
    writeFileSync(blocked, 'a file where the folder should be');
    const log = new AuditLog(join(blocked, 'selfheal.log'));
    await assert.rejects(log.append(record('incident-opened')));
    rmSync(blocked);
    await log.append(record('incident-closed'));
    assert.deepEqual(
      lines(join(blocked, 'selfheal.log')).map((r) => r.event),
      ['incident-closed'],
    );
  });
});

describe('audit control activity', () => {
  function setup() {
    const dir = tempDir();
    const logDir = join(dir, 'logs');
    const config = testConfig(
      `audit: { file: ${join(logDir, 'selfheal.log')} }\nservices:\n  - { name: a.service, host: h1 }\n`,
      dir,
    );
    const metrics = createMetrics();
    const activities = createControlActivities({ config, metrics });
    return { dir, logDir, config, metrics, activities };
  }

  it('counts restarts and escalations even while the log cannot be written, without throwing', async () => {
    const { logDir, metrics, activities, config } = setup();
    writeFileSync(logDir, 'blocks the log folder');
    const started = Date.now();
    await activities.audit(
      record('attempt-finished', { restarted: true, result: 'success', attemptId: 'inc-1-1', incidentId: 'inc-1' }),
    );
    await activities.audit(record('escalated', { escalation: 'ConsecutiveFailures' }));
    assert.ok(Date.now() - started < 2_000, 'an unwritable log does not hold the decision up');
    assert.equal(
      await metricValue(metrics, 'selfhealing_restarts_total', { service: 'a.service', result: 'success' }),
      1,
    );
    assert.equal(
      await metricValue(metrics, 'selfhealing_escalations_total', {
        service: 'a.service',
        reason: 'ConsecutiveFailures',
      }),
      1,
    );
    assert.equal(await metricValue(metrics, 'selfhealing_audit_write_failures_total', {}), 2);
    assert.equal(await metricValue(metrics, 'selfhealing_audit_log_writable', {}), 0);

    // Fixed by the operator: the next write goes through, and the lines held back are written first.
    rmSync(logDir);
    mkdirSync(logDir);
    await activities.audit(record('incident-closed'));
    assert.deepEqual(
      lines(config.audit.file).map((r) => r.event),
      ['attempt-finished', 'escalated', 'incident-closed'],
    );
    assert.equal(await metricValue(metrics, 'selfhealing_audit_log_writable', {}), 1);
  });

  it('writes and counts a decision once when its local activity runs again (same decision id)', async () => {
    // A local activity is at-least-once: when Temporal goes away mid-task, the worker runs it again.
    const { metrics, activities, config } = setup();
    const finished = record('attempt-finished', {
      id: 'run-1/7',
      restarted: true,
      result: 'success',
      attemptId: 'inc-1-1',
      incidentId: 'inc-1',
    });
    const escalated = record('escalated', { id: 'run-1/8', escalation: 'ConsecutiveFailures' });
    for (const r of [finished, escalated, finished, escalated]) await activities.audit(r);
    await activities.audit(record('incident-closed', { id: 'run-2/7' }));
    assert.deepEqual(
      lines(config.audit.file).map((r) => `${r.event} ${r.id}`),
      ['attempt-finished run-1/7', 'escalated run-1/8', 'incident-closed run-2/7'],
    );
    assert.equal(
      await metricValue(metrics, 'selfhealing_restarts_total', { service: 'a.service', result: 'success' }),
      1,
    );
    assert.equal(
      await metricValue(metrics, 'selfhealing_escalations_total', {
        service: 'a.service',
        reason: 'ConsecutiveFailures',
      }),
      1,
    );
  });

  it('writes the held-back lines on its own once the log is writable again, with no new decision', async () => {
    const { logDir, activities, config } = setup();
    writeFileSync(logDir, 'blocks the log folder');
    await activities.audit(record('restart', { attemptId: 'inc-1-1' }));
    rmSync(logDir);
    mkdirSync(logDir);
    const deadline = Date.now() + 15_000;
    for (;;) {
      let events: string[] = [];
      try {
        events = lines(config.audit.file).map((r) => r.event);
      } catch {
        // not written yet
      }
      if (events.includes('restart')) break;
      assert.ok(Date.now() < deadline, 'the held-back line was written by the retry timer');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
});
