// How a simulation under fleet safety may be split: whole hosts joined by dependencies per shard, and
// only when the fleet-wide part (fleet breaker, fleet restart slots) could never have acted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditRecord } from '../../src/activities';
import {
  coordinatorNeverActs,
  couplingGroups,
  fleetNeverActs,
  incidentSpans,
  maxOpenAtOnce,
  partitionGroups,
  recordedSpans,
  slotSpans,
} from '../../src/simulate/driver';
import { planHistory, type AlertHistory } from '../../src/simulate/history';
import { testConfig } from '../helpers/config';

const MIN = 60_000;
const T0 = Date.parse('2026-11-02T00:00:00Z');

function alert(status: 'firing' | 'resolved', service: string, host: string) {
  return { status, labels: { alertname: 'ServiceStalled', service, host }, annotations: {} };
}

const config = testConfig(`
services:
  - { name: a.service, host: h1 }
  - { name: b.service, host: h1 }
  - { name: c.service, host: h2, dependsOn: [ { service: a.service, host: h1 } ] }
  - { name: d.service, host: h3 }
  - { name: e.service, host: h4 }
`);

function history(outages: [string, string, number, number][]): AlertHistory {
  const deliveries = outages.flatMap(([service, host, start, end]) => [
    { at: T0 + start * MIN, alerts: [alert('firing', service, host)] },
    { at: T0 + end * MIN, alerts: [alert('resolved', service, host)] },
  ]);
  return { source: 'test', deliveries };
}

describe('simulate: sharding under fleet safety', () => {
  it('keeps a host whole and joins hosts linked by dependsOn', () => {
    const planned = planHistory(
      config,
      history([
        ['a.service', 'h1', 0, 5],
        ['b.service', 'h1', 10, 15],
        ['c.service', 'h2', 20, 25],
        ['d.service', 'h3', 30, 35],
        ['e.service', 'h4', 40, 45],
      ]),
    );
    const groups = couplingGroups(config, [...planned.services.keys()], planned)
      .map((g) => g.sort().join(' '))
      .sort();
    assert.deepEqual(groups, [
      'selfheal/h1/a.service selfheal/h1/b.service selfheal/h2/c.service',
      'selfheal/h3/d.service',
      'selfheal/h4/e.service',
    ]);
    const shards = partitionGroups(couplingGroups(config, [...planned.services.keys()], planned), planned, 2);
    assert.equal(shards.length, 2);
    assert.ok(shards.some((s) => s.length === 3 && s.includes('selfheal/h2/c.service')));
  });

  it('counts incidents open at once, widened by the margin', () => {
    const spans = [
      { start: 0, end: 10 },
      { start: 10, end: 20 },
      { start: 25, end: 30 },
    ];
    assert.equal(maxOpenAtOnce(spans, 0), 2, 'touching spans overlap');
    assert.equal(maxOpenAtOnce(spans, 3), 2);
    assert.equal(maxOpenAtOnce(spans, 8), 3, 'widened, all three overlap at 17–18');
    assert.equal(maxOpenAtOnce([], 0), 0);
    const planned = planHistory(
      config,
      history([
        ['a.service', 'h1', 0, 5],
        ['d.service', 'h3', 4, 8],
        ['e.service', 'h4', 30, 35],
      ]),
    );
    assert.equal(maxOpenAtOnce(recordedSpans(planned, planned.to), 0), 2);
  });

  it('reads incident spans from the audit records; an incident never closed lasts to the end', () => {
    const rec = (min: number, workflowId: string, event: string) =>
      ({ time: new Date(T0 + min * MIN).toISOString(), workflowId, host: 'h1', event }) as AuditRecord;
    const spans = incidentSpans(
      [rec(0, 'x', 'incident-opened'), rec(5, 'x', 'incident-closed'), rec(3, 'y', 'incident-opened')],
      T0 + 60 * MIN,
    );
    assert.deepEqual(spans, [
      { host: 'h1', start: T0, end: T0 + 5 * MIN },
      { host: 'h1', start: T0 + 3 * MIN, end: T0 + 60 * MIN },
    ]);
  });

  it('splits only while the fleet breaker and the fleet restart slots could never act', () => {
    // Defaults: 10 restarts in flight; the fleet breaker trips over 20 open or over half the fleet.
    const fleet = testConfig(
      `services:\n${Array.from({ length: 50 }, (_, i) => `  - { name: s${i}.service, host: h${i % 5} }`).join('\n')}\n`,
    );
    assert.equal(fleetNeverActs(fleet, 9), true);
    assert.equal(fleetNeverActs(fleet, 10), false, 'as many open as restart slots: a restart could wait');
    const small = testConfig(
      `fleet: { maxRestartsInFlight: 100 }\nservices:\n${Array.from({ length: 8 }, (_, i) => `  - { name: s${i}.service, host: h${i % 4} }`).join('\n')}\n`,
    );
    assert.equal(fleetNeverActs(small, 4), true, '4 of 8 is not over half');
    assert.equal(fleetNeverActs(small, 5), false, '5 of 8 trips the fleet breaker');
    const off = testConfig(
      `fleet: { maxRestartsInFlight: 100, breaker: { enabled: false } }\nservices:\n${Array.from({ length: 8 }, (_, i) => `  - { name: s${i}.service, host: h${i % 4} }`).join('\n')}\n`,
    );
    assert.equal(fleetNeverActs(off, 8), true, 'breaker off: only the slots count');
  });

  it('reads restart-slot spans from the records: a restart to its attempt’s result (or the close, or the end)', () => {
    const rec = (min: number, workflowId: string, host: string, event: string) =>
      ({ time: new Date(T0 + min * MIN).toISOString(), workflowId, host, event }) as AuditRecord;
    const spans = slotSpans(
      [
        rec(0, 'x', 'h1', 'restart'),
        rec(1, 'x', 'h1', 'attempt-finished'),
        rec(2, 'y', 'h2', 'restart'),
        rec(4, 'y', 'h2', 'incident-closed'),
        rec(5, 'z', 'h1', 'restart'),
      ],
      T0 + 60 * MIN,
    );
    assert.deepEqual(spans, [
      { host: 'h1', start: T0, end: T0 + MIN },
      { host: 'h2', start: T0 + 2 * MIN, end: T0 + 4 * MIN },
      { host: 'h1', start: T0 + 5 * MIN, end: T0 + 60 * MIN },
    ]);
  });

  it('the coordinator never acts while no breaker is over and no restart finds the slots full', () => {
    // Defaults: 2 restarts in flight per host, 10 fleet-wide; a host breaker trips over 10 open or
    // over half of a host of 4 or more services.
    const five = testConfig(
      `services:\n${Array.from({ length: 5 }, (_, i) => `  - { name: s${i}.service, host: h1 }`).join('\n')}\n`,
    );
    const rec = (min: number, i: number, event: string) =>
      ({ time: new Date(T0 + min * MIN).toISOString(), workflowId: `w${i}`, host: 'h1', event }) as AuditRecord;
    const incident = (i: number, from: number, to: number, restart = true) => [
      rec(from, i, 'incident-opened'),
      ...(restart ? [rec(from + 2, i, 'restart'), rec(from + 3, i, 'attempt-finished')] : []),
      rec(to, i, 'incident-closed'),
    ];
    const end = T0 + 120 * MIN;
    assert.equal(coordinatorNeverActs(five, [...incident(0, 0, 10), ...incident(1, 0, 10)], end), true);
    assert.equal(
      coordinatorNeverActs(five, [...incident(0, 0, 10), ...incident(1, 0, 10), ...incident(2, 0, 10)], end),
      false,
      'three restarts at once on a host of two slots: the third would wait',
    );
    assert.equal(
      coordinatorNeverActs(five, [...incident(0, 0, 10), ...incident(1, 0, 10), ...incident(2, 20, 30)], end),
      true,
      'the third long after',
    );
    const open = (n: number) => Array.from({ length: n }, (_, i) => incident(i, 0, 10, false)).flat();
    assert.equal(coordinatorNeverActs(five, open(2), end), true, '2 of 5 open is not over half');
    assert.equal(coordinatorNeverActs(five, open(3), end), false, '3 of 5 open trips the host breaker');
    const deps = testConfig(`
services:
  - { name: a.service, host: h1 }
  - { name: b.service, host: h1, dependsOn: [ { service: a.service, host: h1 } ] }
`);
    assert.equal(coordinatorNeverActs(deps, [], end), false, 'dependencies: always the coordinator');
  });
});
