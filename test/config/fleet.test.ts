import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/config';

function problems(yaml: string) {
  try {
    parseConfig(yaml, { env: {}, cwd: '/srv' });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.line ?? '?'} ${p.path}: ${p.message}`);
  }
  assert.fail('expected a ConfigError');
}

describe('fleet safety config', () => {
  it('has defaults for a homelab and a fleet alike', () => {
    const c = parseConfig('services:\n  - { name: a.service, host: h }\n', { env: {}, cwd: '/srv' });
    assert.equal(c.fleet.breaker.enabled, true);
    assert.equal(c.fleet.breaker.mode, 'auto');
    assert.equal(c.fleet.breaker.quietPeriodMs, 300_000);
    assert.deepEqual(c.fleet.breaker.fleet, { maxOpenIncidents: 20, maxOpenShare: 0.5, minServicesForShare: 4 });
    assert.deepEqual(c.fleet.breaker.host, { maxOpenIncidents: 10, maxOpenShare: 0.5, minServicesForShare: 4 });
    assert.equal(c.fleet.maxRestartsInFlight, 10);
    assert.equal(c.fleet.maxRestartsInFlightPerHost, 2);
    assert.equal(c.alertmanager.url, null);
    assert.deepEqual(c.policy.flapping, { incidents: 5, windowMs: 3_600_000 });
    assert.deepEqual(c.services[0].dependsOn, []);
  });

  it('reads every key, shares as a number or a percentage, and per-service flapping', () => {
    const c = parseConfig(
      `
fleet:
  breaker: { enabled: true, mode: manual-reset, quietPeriod: 2m, fleet: { maxOpenIncidents: 50, maxOpenShare: "40%" }, host: { maxOpenShare: 0.3, minServicesForShare: 6 } }
  maxRestartsInFlight: 4
  maxRestartsInFlightPerHost: 1
alertmanager: { url: http://127.0.0.1:9093 }
policy: { flapping: { incidents: 3, window: 30m } }
services:
  - { name: shared.service, host: h }
  - { name: a.service, host: h, dependsOn: [ { service: shared.service } ], policy: { flapping: { incidents: 8 } } }
  - { name: b.service, host: g, dependsOn: [ { service: shared.service, host: h }, a.service ] }
  - { name: a.service, host: g }
`,
      { env: {}, cwd: '/srv' },
    );
    assert.equal(c.fleet.breaker.mode, 'manual-reset');
    assert.equal(c.fleet.breaker.quietPeriodMs, 120_000);
    assert.deepEqual(c.fleet.breaker.fleet, { maxOpenIncidents: 50, maxOpenShare: 0.4, minServicesForShare: 4 });
    assert.deepEqual(c.fleet.breaker.host, { maxOpenIncidents: 10, maxOpenShare: 0.3, minServicesForShare: 6 });
    assert.equal(c.fleet.maxRestartsInFlightPerHost, 1);
    assert.equal(c.alertmanager.url, 'http://127.0.0.1:9093');
    assert.deepEqual(c.services[0].policy.flapping, { incidents: 3, windowMs: 1_800_000 });
    assert.deepEqual(c.services[1].policy.flapping, { incidents: 8, windowMs: 1_800_000 });
    assert.deepEqual(c.services[1].dependsOn, ['h/shared.service']);
    assert.deepEqual(c.services[2].dependsOn, ['h/shared.service', 'g/a.service']);
  });

  it('names the line of a bad share, an unknown dependency and a cycle', () => {
    const p = problems(`fleet:
  breaker:
    fleet: { maxOpenShare: 1.5 }
    mood: auto
services:
  - { name: a.service, host: h, dependsOn: [ b.service ] }
  - { name: b.service, host: h, dependsOn: [ { service: c.service } ] }
  - { name: c.service, host: h, dependsOn: [ a.service, { service: ghost.service, host: h } ] }
`);
    assert.ok(
      p.some((x) => /^3 fleet.breaker.fleet.maxOpenShare: 1.5 must be a share/.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /^4 fleet.breaker.mood: .*did you mean "mode"/.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /^8 services\[2\].dependsOn\[1\]: "ghost.service" on host "h" is not a guarded service/.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) =>
        /^6 services\[0\].dependsOn: dependencies go round in a circle: h\/a.service → h\/b.service → h\/c.service → h\/a.service/.test(
          x,
        ),
      ),
      p.join('\n'),
    );
  });
});
