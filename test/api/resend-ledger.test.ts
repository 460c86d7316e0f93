// The ledger of deliveries answered 503 (src/api/resends.ts): used once, bounded in age and number,
// keyed by the alerts as received and the signals planned from them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PlannedSignal } from '../../src/client/alert-intake';
import { ResendLedger } from '../../src/api/resends';

const signal = (service: string, status: 'firing' | 'resolved' = 'firing'): PlannedSignal => ({
  host: 'h',
  service,
  status,
  alertnames: ['ServiceDown'],
  alerts: [{ id: `fp-${service}`, name: 'ServiceDown' }],
  workflowId: `selfheal/h/${service}`,
});
const alert = (service: string, startsAt = '2026-12-04T23:00:00Z') => ({
  status: 'firing',
  labels: { alertname: 'ServiceDown', service, host: 'h' },
  startsAt,
});
const keyOf = (service: string, startsAt?: string) => ResendLedger.key([alert(service, startsAt)], [signal(service)]);

describe('ResendLedger', () => {
  it('gives back what a failed attempt got through, once', () => {
    const l = new ResendLedger();
    const k = keyOf('a');
    assert.equal(l.take(k).size, 0, 'nothing for a delivery never seen failing');
    l.failed(k, new Set([1]), Date.now());
    assert.deepEqual([...l.take(k)], [1]);
    assert.equal(l.take(k).size, 0, 'taken: a second resend is delivered in full');
  });

  it('a delivery answered 200 leaves nothing, also for an attempt that failed after it started', () => {
    let now = 1_000;
    const l = new ResendLedger(60_000, 10, () => now);
    const k = keyOf('a');
    const slowStart = now;
    now += 10;
    l.succeeded(k); // a second, concurrent attempt got everything through
    now += 10;
    l.failed(k, new Set([0]), slowStart); // the first one gave up afterwards
    assert.equal(l.take(k).size, 0, 'nothing skipped: the later success delivered it all');
    l.failed(k, new Set([0]), now); // an attempt that started after the success failed: kept
    assert.deepEqual([...l.take(k)], [0]);
  });

  it('another notification has another key: a new startsAt, another status, another alert or service', () => {
    const base = keyOf('a');
    assert.notEqual(keyOf('a', '2026-12-04T23:07:00Z'), base, 'fired again: a new alert');
    assert.notEqual(ResendLedger.key([alert('a')], [signal('a', 'resolved')]), base);
    assert.notEqual(
      ResendLedger.key([alert('a')], [{ ...signal('a'), alerts: [{ id: 'other', name: 'ServiceDown' }] }]),
      base,
    );
    assert.notEqual(keyOf('b'), base);
    assert.equal(keyOf('a'), base);
  });

  it('forgets entries older than its TTL and the oldest beyond its cap', () => {
    let now = 0;
    const l = new ResendLedger(1_000, 3, () => now);
    const keys = ['a', 'b', 'c', 'd'].map((s) => keyOf(s));
    l.failed(keys[0], new Set([0]), now);
    now = 1_500;
    assert.equal(l.take(keys[0]).size, 0, 'too old');
    for (const k of keys) l.failed(k, new Set([0]), now);
    assert.equal(l.size, 3);
    assert.equal(l.take(keys[0]).size, 0, 'the oldest went first');
    assert.equal(l.take(keys[3]).size, 1);
    now = 3_000;
    l.failed(keys[0], new Set([0]), now);
    assert.equal(l.size, 1, 'expired entries are dropped when a new one comes');
  });
});
