// A simulation runs without the fleet coordinator only where the coordinator could never have held a
// restart (it would have granted every ask at once): there the answer is the same as with it; where
// fleet safety matters (three services of a host failing at once, two restart slots per host) the
// default mode sees that on the shortcut's own records and runs the coordinator.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditRecord } from '../../src/activities';
import { simulate, type SimulationResult } from '../../src/simulate/driver';
import type { AlertHistory } from '../../src/simulate/history';
import { testConfig } from '../helpers/config';

const MIN = 60_000;
const T0 = Date.parse('2026-11-02T00:00:00Z');

const config = testConfig(`
services:
  - { name: a.service, host: h1 }
  - { name: b.service, host: h1 }
  - { name: c.service, host: h1 }
  - { name: d.service, host: h2 }
${['e', 'f', 'g', 'h', 'i', 'j'].map((x) => `  - { name: ${x}.service, host: h2 }`).join('\n')}
`);

function history(outages: [string, string, number, number][]): AlertHistory {
  const alert = (status: 'firing' | 'resolved', service: string, host: string) => ({
    status,
    labels: { alertname: 'ServiceStalled', service, host },
    annotations: {},
  });
  return {
    source: 'test',
    deliveries: outages.flatMap(([service, host, start, end]) => [
      { at: T0 + start * MIN, alerts: [alert('firing', service, host)] },
      { at: T0 + end * MIN, alerts: [alert('resolved', service, host)] },
    ]),
  };
}

/** What each service went through: its records' events and decisions in order (times differ by jitter). */
function story(r: SimulationResult): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const rec of r.records.filter((x: AuditRecord) => x.service !== '*'))
    (out[rec.service] ??= []).push(`${rec.event}:${rec.decision}`);
  return out;
}

const heldFor = (r: SimulationResult) => r.records.filter((x) => x.event === 'held').map((x) => x.decision);

describe('simulate: the fleet coordinator only where it could act', { timeout: 240_000 }, () => {
  it('where it never could: run without it, with the same answer as with it', async () => {
    // One outage at a time, on two hosts: nothing for the breakers or the slots to do.
    const h = history([
      ['a.service', 'h1', 0, 10],
      ['b.service', 'h1', 30, 40],
      ['c.service', 'h1', 60, 70],
      ['d.service', 'h2', 62, 75],
    ]);
    const [auto, real] = await Promise.all([
      simulate({ config, history: h }),
      simulate({ config, history: h, coordinator: 'real' }),
    ]);
    assert.equal(auto.coordinator, 'skipped');
    assert.equal(real.coordinator, 'real');
    assert.deepEqual(story(auto), story(real));
    assert.equal(auto.records.filter((x) => x.event === 'restart').length, 4);
  });

  it('where it could: the shortcut alone differs, so the default runs the coordinator', async () => {
    // Three services of h1 fail at once: two restart slots per host, the third restart waits (no
    // breaker trips: 3 of a host of 3 is judged by the count, 3 of a fleet of 10 is under half).
    const h = history([
      ['a.service', 'h1', 0, 10],
      ['b.service', 'h1', 0, 10],
      ['c.service', 'h1', 0, 10],
    ]);
    const [auto, real, skip] = await Promise.all([
      simulate({ config, history: h }),
      simulate({ config, history: h, coordinator: 'real' }),
      simulate({ config, history: h, coordinator: 'skip' }),
    ]);
    // The shortcut's own records show three restarts in flight on a host of two slots: it runs again
    // with the coordinator.
    assert.deepEqual(heldFor(skip), [], 'without the coordinator nothing is held');
    assert.equal(skip.records.filter((x) => x.event === 'restart').length, 3);
    assert.equal(auto.coordinator, 'real');
    // With it, the third ask is held for a restart slot: the first two restarts hold theirs while
    // their verification runs (verifyStableFor, 10 s of simulated time, as on a real host), and the
    // third restart goes once one of them is verified.
    for (const r of [real, auto]) {
      assert.deepEqual(heldFor(r), ['hold-concurrency'], 'one slot hold');
      const restarts = r.records.filter((x) => x.event === 'restart').map((x) => Date.parse(x.time));
      assert.equal(restarts.length, 3, 'every service restarted once');
      const verified = r.records
        .filter((x) => x.event === 'attempt-finished' && x.result === 'success')
        .map((x) => Date.parse(x.time));
      const [first, second, third] = restarts.sort((a, b) => a - b);
      assert.ok(second - first < 5_000, 'two restarts at once');
      assert.ok(third >= Math.min(...verified), 'the third only once a slot was given back');
      assert.ok(third - first >= 9_000, `the third waited for a verification: ${(third - first) / 1000} s`);
    }
  });
});
