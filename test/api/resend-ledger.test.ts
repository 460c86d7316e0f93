// The ledger of deliveries answered 503 (src/api/resends.ts): used once, bounded in age and number,
// keyed by the planned signals themselves.
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

describe('ResendLedger', () => {
  it('gives back what a failed attempt got through, once', () => {
    const l = new ResendLedger();
    const k = ResendLedger.key([signal('a'), signal('b')]);
    assert.equal(l.take(k).size, 0, 'nothing for a delivery never seen failing');
    l.keep(k, new Set([1]));
    assert.deepEqual([...l.take(k)], [1]);
    assert.equal(l.take(k).size, 0, 'taken: a second resend is delivered in full');
  });

  it('keeps the set live: a signal accepted after the 503 counts for the resend', () => {
    const l = new ResendLedger();
    const k = ResendLedger.key([signal('a')]);
    const accepted = new Set<number>();
    l.keep(k, accepted);
    accepted.add(0);
    assert.deepEqual([...l.take(k)], [0]);
  });

  it('different signals (another status, another alert, another service) have another key', () => {
    const base = ResendLedger.key([signal('a')]);
    assert.notEqual(ResendLedger.key([signal('a', 'resolved')]), base);
    assert.notEqual(ResendLedger.key([{ ...signal('a'), alerts: [{ id: 'other', name: 'ServiceDown' }] }]), base);
    assert.notEqual(ResendLedger.key([signal('b')]), base);
    assert.equal(ResendLedger.key([signal('a')]), base);
  });

  it('forgets entries older than its TTL and the oldest beyond its cap', () => {
    let now = 0;
    const l = new ResendLedger(1_000, 3, () => now);
    const keys = ['a', 'b', 'c', 'd'].map((s) => ResendLedger.key([signal(s)]));
    l.keep(keys[0], new Set([0]));
    now = 1_500;
    assert.equal(l.take(keys[0]).size, 0, 'too old');
    for (const k of keys) l.keep(k, new Set([0]));
    assert.equal(l.size, 3);
    assert.equal(l.take(keys[0]).size, 0, 'the oldest went first');
    assert.equal(l.take(keys[3]).size, 1);
    now = 3_000;
    l.keep(keys[0], new Set([0]));
    assert.equal(l.size, 1, 'expired entries are dropped when a new one comes');
  });
});
