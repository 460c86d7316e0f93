// The state gauges on hand-made reads: one service whose read fails must not hide the others, and
// stale values are marked as such, then no longer exported once older than the bound.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMetrics, type ServiceStateRead, type StateReadErrorReason } from '../../src/metrics/metrics';
import { testConfig } from '../helpers/config';

const config = testConfig(`services:
  - { name: a.service, host: web1 }
  - { name: b.service, host: web1 }
  - { name: c.service, host: web2 }
`);

/** The value of one sample in the exposition text, or undefined when the series is not exported. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

const ok = (service: string, host: string, status: 'OK' | 'HEALING' | 'CRITICAL', failures = 0): ServiceStateRead => ({
  host,
  service,
  status,
  phase: status === 'OK' ? 'idle' : 'validating',
  consecutiveFailures: failures,
  restartsLastHour: 1,
});
const failed = (service: string, host: string, reason: StateReadErrorReason = 'query-failed'): ServiceStateRead => ({
  host,
  service,
  error: reason,
});

/** Metrics on a hand-driven clock and state source; scrape() reads once per call. */
function harness(maxStateAgeMs = 120_000) {
  let now = 1_000_000;
  let reads: ServiceStateRead[] | Error = [];
  const metrics = createMetrics(undefined, { maxStateAgeMs, now: () => now, readCacheMs: 0 });
  metrics.initServices(config);
  metrics.setStateSource(async () => {
    if (reads instanceof Error) throw reads;
    return reads;
  });
  return {
    metrics,
    set(r: ServiceStateRead[] | Error) {
      reads = r;
    },
    advance(ms: number) {
      now += ms;
    },
    scrape: () => metrics.registry.metrics(),
  };
}

const A = { host: 'web1', service: 'a.service' };
const B = { host: 'web1', service: 'b.service' };
const C = { host: 'web2', service: 'c.service' };

describe('state gauges when reads fail', () => {
  it('a failed read of one service leaves every other service current', async () => {
    const h = harness();
    h.set([ok('a.service', 'web1', 'HEALING'), failed('b.service', 'web1'), ok('c.service', 'web2', 'CRITICAL', 3)]);
    const text = await h.scrape();
    assert.equal(sample(text, 'selfhealing_service_status', A), 1);
    assert.equal(sample(text, 'selfhealing_service_status', C), 2);
    assert.equal(sample(text, 'selfhealing_consecutive_failures', C), 3);
    assert.equal(sample(text, 'selfhealing_state_stale', A), 0);
    assert.equal(sample(text, 'selfhealing_state_stale', C), 0);
    // b was never read: no status to show, and it says so.
    assert.equal(sample(text, 'selfhealing_service_status', B), undefined);
    assert.equal(sample(text, 'selfhealing_state_stale', B), 1);
    assert.equal(sample(text, 'selfhealing_state_read_errors_total', { ...B, reason: 'query-failed' }), 1);
    assert.equal(sample(text, 'selfhealing_temporal_up'), 1, 'Temporal answered');
    // Every configured service is marked guarded whatever its reads do (rules join on it).
    for (const s of [A, B, C]) assert.equal(sample(text, 'selfhealing_service_guarded', s), 1);
  });

  it('a service whose reads start failing keeps its last status, marked stale with its age, until the bound', async () => {
    const h = harness(120_000);
    h.set([ok('a.service', 'web1', 'HEALING'), ok('b.service', 'web1', 'HEALING'), ok('c.service', 'web2', 'OK')]);
    let text = await h.scrape();
    assert.equal(sample(text, 'selfhealing_service_status', B), 1);
    assert.equal(sample(text, 'selfhealing_state_age_seconds', B), 0);

    h.set([ok('a.service', 'web1', 'OK'), failed('b.service', 'web1'), ok('c.service', 'web2', 'OK')]);
    h.advance(30_000);
    text = await h.scrape();
    assert.equal(sample(text, 'selfhealing_service_status', A), 0, 'a moved on');
    assert.equal(sample(text, 'selfhealing_service_status', B), 1, 'last known status, within the bound');
    assert.equal(sample(text, 'selfhealing_state_stale', B), 1);
    assert.equal(sample(text, 'selfhealing_state_age_seconds', B), 30);
    assert.equal(sample(text, 'selfhealing_state_age_seconds', A), 0);

    h.advance(90_001);
    text = await h.scrape();
    // Older than the bound: no status, failures, budget or restarts series for b, so a stale HEALING
    // can no longer hold SelfHealingActive (and its inhibition of the admin's page).
    for (const name of [
      'selfhealing_service_status',
      'selfhealing_consecutive_failures',
      'selfhealing_budget_exhausted',
      'selfhealing_restarts_last_hour',
    ]) {
      assert.equal(sample(text, name, B), undefined, name);
      assert.equal(sample(text, name, A) !== undefined, true, `${name} of a still exported`);
    }
    assert.equal(sample(text, 'selfhealing_state_stale', B), 1);
    assert.equal(sample(text, 'selfhealing_state_age_seconds', B), 120, 'the age keeps growing');
    assert.equal(sample(text, 'selfhealing_state_read_errors_total', { ...B, reason: 'query-failed' }), 2);
    assert.equal(sample(text, 'selfhealing_service_guarded', B), 1);
  });

  it('the next good read clears the staleness', async () => {
    const h = harness();
    h.set([failed('a.service', 'web1'), ok('b.service', 'web1', 'OK'), ok('c.service', 'web2', 'OK')]);
    assert.equal(sample(await h.scrape(), 'selfhealing_state_stale', A), 1);
    h.set([ok('a.service', 'web1', 'HEALING'), ok('b.service', 'web1', 'OK'), ok('c.service', 'web2', 'OK')]);
    h.advance(10_000);
    const text = await h.scrape();
    assert.equal(sample(text, 'selfhealing_state_stale', A), 0);
    assert.equal(sample(text, 'selfhealing_service_status', A), 1);
    assert.equal(sample(text, 'selfhealing_state_age_seconds', A), 0);
  });

  it('when the whole read fails (Temporal down) every service is stale, and the statuses expire too', async () => {
    const h = harness(60_000);
    h.set([ok('a.service', 'web1', 'HEALING'), ok('b.service', 'web1', 'OK'), ok('c.service', 'web2', 'OK')]);
    await h.scrape();
    h.set(new Error('14 UNAVAILABLE: connect ECONNREFUSED'));
    h.advance(30_000);
    let text = await h.scrape();
    assert.equal(sample(text, 'selfhealing_temporal_up'), 0);
    for (const s of [A, B, C]) {
      assert.equal(sample(text, 'selfhealing_state_stale', s), 1);
      assert.equal(sample(text, 'selfhealing_state_age_seconds', s), 30);
      assert.equal(sample(text, 'selfhealing_state_read_errors_total', { ...s, reason: 'unavailable' }), 1);
    }
    assert.equal(sample(text, 'selfhealing_service_status', A), 1, 'within the bound');
    h.advance(31_000);
    text = await h.scrape();
    assert.equal(sample(text, 'selfhealing_service_status', A), undefined, 'past the bound');
    assert.equal(sample(text, 'selfhealing_service_guarded', A), 1);
  });

  it('every service failing as unreachable reads as Temporal down', async () => {
    const h = harness();
    h.set([ok('a.service', 'web1', 'OK'), ok('b.service', 'web1', 'OK'), ok('c.service', 'web2', 'OK')]);
    assert.equal(sample(await h.scrape(), 'selfhealing_temporal_up'), 1, 'read on the same scrape, not the one before');
    h.set([
      failed('a.service', 'web1', 'unavailable'),
      failed('b.service', 'web1', 'unavailable'),
      failed('c.service', 'web2', 'unavailable'),
    ]);
    assert.equal(sample(await h.scrape(), 'selfhealing_temporal_up'), 0);
  });
});
