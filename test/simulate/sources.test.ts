// Pure parts of simulate: reading histories, planning them with the webhook's intake, the report.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditRecord } from '../../src/activities';
import { intervalAt, planHistory } from '../../src/simulate/history';
import { percentile, serviceFigures } from '../../src/simulate/report';
import { HistoryError, historyFromAudit, historyFromDeliveries, parseFrom } from '../../src/simulate/sources';
import { testConfig } from '../helpers/config';

const config = testConfig('services:\n  - { name: web.service, host: app1 }\n');
const T = Date.parse('2026-11-02T10:00:00Z');
const iso = (min: number) => new Date(T + min * 60_000).toISOString();

describe('historyFromDeliveries', () => {
  it('reads recorded lines and bare webhook bodies (timed by startsAt / endsAt)', () => {
    const text = [
      JSON.stringify({ receivedAt: iso(0), body: { alerts: [{ status: 'firing', labels: { alertname: 'A' } }] } }),
      JSON.stringify({ alerts: [{ status: 'resolved', labels: { alertname: 'A' }, endsAt: iso(5) }] }),
      '',
    ].join('\n');
    const h = historyFromDeliveries('x.jsonl', text);
    assert.deepEqual(
      h.deliveries.map((d) => [d.at, d.alerts[0].status]),
      [
        [T, 'firing'],
        [T + 5 * 60_000, 'resolved'],
      ],
    );
  });

  it('says which line is wrong', () => {
    assert.throws(
      () => historyFromDeliveries('x.jsonl', '{}\nnot json\n'),
      (e: Error) => {
        assert.ok(e instanceof HistoryError);
        assert.match(e.message, /x\.jsonl:1: no alerts list/);
        return true;
      },
    );
    assert.throws(
      () => historyFromDeliveries('x.jsonl', `{"receivedAt":"${iso(0)}","alerts":[]}\nnot json\n`),
      /x\.jsonl:2: not JSON/,
    );
  });
});

describe('historyFromAudit', () => {
  it('an incident opening is its alerts firing; its close is them resolving', () => {
    const rec = (min: number, event: string, reason = ''): Partial<AuditRecord> => ({
      time: iso(min),
      host: 'app1',
      service: 'web.service',
      workflowId: 'selfheal/app1/web.service',
      event: event as AuditRecord['event'],
      decision: 'x',
      reason,
    });
    const text = [
      rec(0, 'incident-opened', 'ServiceDown, ServiceStalled firing; validating for 2m'),
      rec(2, 'restart'),
      rec(3, 'incident-closed'),
    ]
      .map((r) => JSON.stringify(r))
      .join('\n');
    const h = historyFromAudit(config, 'audit.log', `${text}\n{torn`);
    assert.equal(h.deliveries.length, 2);
    assert.deepEqual(
      h.deliveries[0].alerts.map((a) => [a.status, a.labels.alertname, a.labels.service, a.labels.host]),
      [
        ['firing', 'ServiceDown', 'web.service', 'app1'],
        ['firing', 'ServiceStalled', 'web.service', 'app1'],
      ],
    );
    assert.equal(h.deliveries[1].at, T + 3 * 60_000);
    assert.deepEqual(
      h.deliveries[1].alerts.map((a) => a.status),
      ['resolved', 'resolved'],
    );
  });
});

describe('planHistory', () => {
  it('derives each service’s recorded down intervals from the planned signals', () => {
    const a = (status: 'firing' | 'resolved', alertname: string) => ({
      status,
      labels: { alertname, service: 'web.service', host: 'app1' },
    });
    const p = planHistory(config, {
      source: 'x',
      deliveries: [
        { at: T + 60_000, alerts: [a('firing', 'B')] },
        { at: T, alerts: [a('firing', 'A')] },
        { at: T + 120_000, alerts: [a('resolved', 'A')] },
        { at: T + 180_000, alerts: [a('resolved', 'B')] },
        { at: T + 240_000, alerts: [a('firing', 'A'), { status: 'firing', labels: { alertname: 'A' } }] },
      ],
    });
    const down = p.down.get('selfheal/app1/web.service')!;
    assert.deepEqual(down, [
      { start: T, end: T + 180_000 },
      { start: T + 240_000, end: Infinity },
    ]);
    assert.equal(intervalAt(down, T + 200_000), null);
    assert.deepEqual(intervalAt(down, T + 179_999), down[0]);
    assert.deepEqual(p.notActedOn, { 'missing-labels': 1 });
  });
});

describe('parseFrom', () => {
  it('reads a duration back from now, or an ISO time', () => {
    assert.equal(parseFrom('7d', T), T - 7 * 86_400_000);
    assert.equal(parseFrom('36h', T), T - 36 * 3_600_000);
    assert.equal(parseFrom(iso(0), 0), T);
    assert.throws(() => parseFrom('last week', T), HistoryError);
  });
});

describe('report figures', () => {
  it('held time runs from a refusal to the next restart or close; latency from the alert to the first restart', () => {
    const r = (min: number, event: string, decision = '', extra: Partial<AuditRecord> = {}): AuditRecord => ({
      time: iso(min),
      host: 'h',
      service: 's',
      workflowId: 'w',
      event: event as AuditRecord['event'],
      decision,
      reason: '',
      incidentId: 'inc-1',
      ...extra,
    });
    const f = serviceFigures(
      [
        r(0, 'incident-opened', 'validate'),
        r(2, 'decision', 'refuse-budget'),
        r(2, 'escalated', 'escalate', { escalation: 'SelfHealingExhausted' }),
        r(7, 'restart', 'restart'),
        r(7, 'attempt-finished', 'failed', { restarted: true }),
        r(8, 'decision', 'wait-cooldown'),
        r(9, 'restart', 'restart'),
        r(9, 'attempt-finished', 'recovered', { restarted: true }),
        r(9, 'incident-closed', 'verified'),
      ],
      T + 3_600_000,
    );
    assert.equal(f.incidents, 1);
    assert.equal(f.restarts, 2);
    assert.deepEqual(f.refused, { cooldown: 1, budget: 1, breaker: 0 });
    assert.equal(f.escalations.SelfHealingExhausted, 1);
    assert.equal(f.heldSeconds, 5 * 60 + 60);
    assert.deepEqual(f.alertToRestart, { p50: 420, p95: 420, count: 1 });
  });

  it('percentiles are nearest-rank', () => {
    assert.equal(percentile([], 50), null);
    assert.equal(percentile([1, 2, 3, 4], 50), 2);
    assert.equal(percentile([1, 2, 3, 4], 95), 4);
  });
});
