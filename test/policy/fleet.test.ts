// The fleet-safety policy on its own: breaker transitions, admission, concurrency, dependencies,
// and properties over random event sequences (fast-check).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { admission, expireLeases, grant, incidentClosed, incidentOpened, release } from '../../src/policy/admission';
import {
  countScope,
  DEFAULT_BREAKER,
  dependencyCycle,
  FLEET_SCOPE,
  hostScope,
  initialFleetState,
  overThreshold,
  resetByHand,
  serviceKey,
  SILENCE_RECHECK_MIN_MS,
  SILENCE_RECHECK_MS,
  silenceRecheckAt,
  stepBreakers,
  tripByHand,
  type AdmissionRequest,
  type FleetSettings,
  type FleetState,
} from '../../src/policy/fleet';

const T0 = Date.parse('2026-12-04T10:00:00Z');
const min = 60_000;

const homelab = (over: Partial<FleetSettings> = {}): FleetSettings => ({
  breaker: { ...DEFAULT_BREAKER, quietPeriodMs: 5 * min },
  maxRestartsInFlight: 10,
  maxRestartsInFlightPerHost: 2,
  leaseMs: 15 * min,
  servicesPerHost: { homelab: 7 },
  ...over,
});

const req = (service: string, over: Partial<AdmissionRequest> = {}): AdmissionRequest => ({
  host: 'homelab',
  service,
  workflowId: `selfheal/homelab/${service}`,
  incidentId: 'inc-1',
  ask: 1,
  approved: false,
  dependsOn: [],
  ...over,
});

function storm(st: FleetState, n: number, now = T0, host = 'homelab'): void {
  for (let i = 0; i < n; i++) incidentOpened(st, host, `s${i}.service`, now);
}

/** 5 of the homelab's services open (trips), 3 of them close, a quiet period passes: half-open. */
function halfOpenAfterStorm(st: FleetState, s: FleetSettings): void {
  storm(st, 5);
  stepBreakers(st, s, T0);
  for (const i of [1, 2, 3]) incidentClosed(st, 'homelab', `s${i}.service`, T0);
  stepBreakers(st, s, T0 + 1);
  stepBreakers(st, s, T0 + 6 * min);
}

describe('overThreshold', () => {
  it('trips on the count, and on the share only for a scope big enough to have one', () => {
    const l = { maxOpenIncidents: 20, maxOpenShare: 0.5, minServicesForShare: 4 };
    assert.equal(overThreshold(4, 7, l), true);
    assert.equal(overThreshold(3, 7, l), false);
    assert.equal(overThreshold(2, 3, l), false, '2 of 3 is no storm');
    assert.equal(overThreshold(20, 5000, l), false);
    assert.equal(overThreshold(21, 5000, l), true);
  });
});

describe('the breaker', () => {
  it('trips once when most of the homelab is down, and holds every restart', () => {
    const st = initialFleetState();
    const s = homelab();
    storm(st, 5);
    const events = stepBreakers(st, s, T0);
    assert.deepEqual(
      events.map((e) => `${e.kind} ${e.scope}`),
      ['tripped fleet', 'tripped host:homelab'],
    );
    assert.equal(stepBreakers(st, s, T0 + 1).length, 0, 'no second trip while open');
    const a = admission(st, s, req('s0.service'));
    assert.equal(a.kind, 'hold');
    assert.equal(a.kind === 'hold' && a.reason, 'breaker');
  });

  it('goes half-open after a quiet period, admits exactly one trial, and closes when it verifies', () => {
    const st = initialFleetState();
    const s = homelab();
    storm(st, 5);
    stepBreakers(st, s, T0);
    for (const i of [1, 2, 3]) incidentClosed(st, 'homelab', `s${i}.service`, T0 + min);
    stepBreakers(st, s, T0 + min);
    assert.equal(st.breakers.fleet.state, 'open', 'still inside the quiet period');
    const events = stepBreakers(st, s, T0 + 6 * min);
    assert.deepEqual(
      events.map((e) => e.kind),
      ['half-open', 'half-open'],
    );
    const first = admission(st, s, req('s0.service'));
    assert.deepEqual(first, { kind: 'grant', trialFor: [FLEET_SCOPE, hostScope('homelab')] });
    grant(st, s, req('s0.service'), first.kind === 'grant' ? first.trialFor : [], T0 + 6 * min);
    const second = admission(st, s, req('s4.service'));
    assert.equal(second.kind === 'hold' && second.reason, 'breaker', 'one trial only');
    const closed = release(st, serviceKey('homelab', 's0.service'), 'verified', T0 + 7 * min);
    assert.deepEqual(
      closed.map((e) => `${e.kind} ${e.scope}`),
      ['closed fleet', 'closed host:homelab'],
    );
    assert.equal(admission(st, s, req('s4.service')).kind, 'grant');
  });

  it('opens again when the trial fails, without a new storm', () => {
    const st = initialFleetState();
    const s = homelab();
    halfOpenAfterStorm(st, s);
    grant(st, s, req('s0.service'), [FLEET_SCOPE, hostScope('homelab')], T0 + 6 * min);
    const events = release(st, serviceKey('homelab', 's0.service'), 'failed', T0 + 7 * min);
    assert.deepEqual(
      events.map((e) => e.kind),
      ['reopened', 'reopened'],
    );
    assert.equal(st.breakers.fleet.state, 'open');
  });

  it('closes from half-open when nothing is left open', () => {
    const st = initialFleetState();
    const s = homelab();
    storm(st, 5);
    stepBreakers(st, s, T0);
    for (let i = 0; i < 5; i++) incidentClosed(st, 'homelab', `s${i}.service`, T0);
    stepBreakers(st, s, T0 + 1);
    stepBreakers(st, s, T0 + 6 * min);
    assert.equal(st.breakers.fleet.state, 'half-open');
    const events = stepBreakers(st, s, T0 + 6 * min + 1);
    assert.equal(events[0].kind, 'closed');
  });

  it('stays open in manual-reset mode until a human resets it; a reset mid-storm does not trip again at once', () => {
    const st = initialFleetState();
    const s = homelab({ breaker: { ...DEFAULT_BREAKER, mode: 'manual-reset' } });
    storm(st, 5);
    stepBreakers(st, s, T0);
    incidentClosed(st, 'homelab', 's4.service', T0);
    stepBreakers(st, s, T0 + 1);
    stepBreakers(st, s, T0 + 60 * min);
    assert.equal(st.breakers.fleet.state, 'open');
    resetByHand(st, s, FLEET_SCOPE, 'ops', T0 + 61 * min);
    resetByHand(st, s, hostScope('homelab'), 'ops', T0 + 61 * min);
    assert.equal(stepBreakers(st, s, T0 + 61 * min).length, 0, 'disarmed while still over the threshold');
    assert.equal(admission(st, s, req('s0.service')).kind, 'grant');
    for (const i of [0, 1, 2]) incidentClosed(st, 'homelab', `s${i}.service`, T0 + 62 * min);
    assert.deepEqual(
      stepBreakers(st, s, T0 + 62 * min).map((e) => e.kind),
      ['rearmed', 'rearmed'],
    );
    storm(st, 5, T0 + 63 * min);
    assert.equal(stepBreakers(st, s, T0 + 63 * min)[0].kind, 'tripped');
  });

  it('a human trip holds until a human reset, whatever the count; approve passes it', () => {
    const st = initialFleetState();
    const s = homelab();
    tripByHand(st, FLEET_SCOPE, 'ops', 'network work', T0);
    stepBreakers(st, s, T0 + 600 * min);
    assert.equal(st.breakers.fleet.state, 'open');
    assert.equal(admission(st, s, req('a.service')).kind, 'hold');
    assert.equal(admission(st, s, req('a.service', { approved: true })).kind, 'grant');
  });

  it('a restart slot never released expires, and a lost trial counts as failed', () => {
    const st = initialFleetState();
    const s = homelab();
    halfOpenAfterStorm(st, s);
    grant(st, s, req('s0.service'), [FLEET_SCOPE], T0 + 6 * min);
    assert.equal(expireLeases(st, T0 + 20 * min).length, 0);
    assert.equal(expireLeases(st, T0 + 22 * min)[0].kind, 'reopened');
    assert.equal(Object.keys(st.leases).length, 0);
  });
});

describe('admission', () => {
  it('paces restarts per host and fleet-wide', () => {
    const st = initialFleetState();
    const s = homelab({ servicesPerHost: { a: 100, b: 100 }, maxRestartsInFlight: 3 });
    for (const svc of ['x', 'y']) grant(st, s, req(svc, { host: 'a' }), [], T0);
    const perHost = admission(st, s, req('z', { host: 'a' }));
    assert.equal(perHost.kind === 'hold' && perHost.reason, 'concurrency');
    grant(st, s, req('x', { host: 'b' }), [], T0);
    const fleet = admission(st, s, req('y', { host: 'b' }));
    assert.match(fleet.kind === 'hold' ? fleet.detail : '', /fleet-wide/);
  });

  it('holds a service while a dependency has an open incident; an approval passes', () => {
    const st = initialFleetState();
    const s = homelab();
    incidentOpened(st, 'homelab', 'shared.service', T0);
    const r = req('agent.service', { dependsOn: ['homelab/shared.service'] });
    const a = admission(st, s, r);
    assert.deepEqual(a, { kind: 'hold', reason: 'dependency', detail: 'waiting for homelab/shared.service' });
    assert.equal(admission(st, s, { ...r, approved: true }).kind, 'grant');
    incidentClosed(st, 'homelab', 'shared.service', T0);
    assert.equal(admission(st, s, r).kind, 'grant');
  });

  it('finds dependency cycles', () => {
    assert.deepEqual(dependencyCycle({ a: ['b'], b: ['c'], c: ['a'] }), ['a', 'b', 'c', 'a']);
    assert.equal(dependencyCycle({ a: ['b'], b: ['c'], d: ['b'] }), null);
  });
});

// ---- properties ---------------------------------------------------------------------------------

type Op =
  | { op: 'open' | 'close' | 'ask' | 'verify' | 'fail'; host: number; svc: number; approved: boolean }
  | { op: 'tick'; ms: number }
  | { op: 'trip' | 'reset' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constantFrom('open' as const, 'close' as const, 'ask' as const, 'verify' as const, 'fail' as const),
    host: fc.integer({ min: 0, max: 2 }),
    svc: fc.integer({ min: 0, max: 7 }),
    approved: fc.boolean(),
  }),
  fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 20 * min }) }),
  fc.record({ op: fc.constantFrom('trip' as const, 'reset' as const) }),
);

describe('properties over random event sequences', () => {
  it('never admits more than the limits, never one unapproved restart through an open breaker, one trial at most', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), fc.integer({ min: 1, max: 4 }), (ops, perHost) => {
        const s = homelab({
          servicesPerHost: { h0: 8, h1: 8, h2: 8 },
          maxRestartsInFlight: 4,
          maxRestartsInFlightPerHost: perHost,
        });
        const st = initialFleetState();
        let now = T0;
        for (const o of ops) {
          if (o.op === 'tick') now += o.ms;
          else if (o.op === 'trip') tripByHand(st, FLEET_SCOPE, 'p', 'prop', now);
          else if (o.op === 'reset') resetByHand(st, s, FLEET_SCOPE, 'p', now);
          else if ('host' in o) {
            const host = `h${o.host}`;
            const svc = `s${o.svc}`;
            const key = serviceKey(host, svc);
            if (o.op === 'open') incidentOpened(st, host, svc, now);
            else if (o.op === 'close') incidentClosed(st, host, svc, now);
            else if (o.op === 'verify' || o.op === 'fail')
              release(st, key, o.op === 'verify' ? 'verified' : 'failed', now);
            else if (st.incidents[key]) {
              expireLeases(st, now);
              stepBreakers(st, s, now);
              const r = req(svc, { host, approved: o.approved, incidentId: 'i' });
              const wasOpen = [FLEET_SCOPE, hostScope(host)].some((sc) => st.breakers[sc]?.state === 'open');
              const a = admission(st, s, r);
              if (a.kind === 'grant' && !st.leases[key]) {
                assert.ok(!wasOpen || o.approved, 'granted through an open breaker');
                grant(st, s, r, a.trialFor, now);
              }
            }
          }
          const leases = Object.values(st.leases);
          assert.ok(leases.length <= s.maxRestartsInFlight);
          for (const h of ['h0', 'h1', 'h2']) assert.ok(leases.filter((l) => l.host === h).length <= perHost);
          for (const [scope, b] of Object.entries(st.breakers)) {
            const trials = leases.filter((l) => l.trialFor.includes(scope));
            assert.ok(trials.length <= 1, `more than one trial in ${scope}`);
            if (b.state !== 'half-open') assert.equal(b.trial, null);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('counts each service once, however many times it is reported', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 50 }), (svcs) => {
        const st = initialFleetState();
        for (const i of svcs) incidentOpened(st, 'h', `s${i}`, T0);
        const c = countScope(st, homelab({ servicesPerHost: { h: 6 } }), hostScope('h'));
        assert.equal(c.open, new Set(svcs).size);
      }),
    );
  });
});

describe('when a silenced incident asks Alertmanager again', () => {
  const now = Date.parse('2026-12-04T12:00:00Z');
  const iso = (ms: number) => new Date(ms).toISOString();

  it('asks just after the silence ends, not a minute later', () => {
    assert.equal(silenceRecheckAt(now, iso(now + 20_000)), now + 21_000);
  });

  it('asks at least every minute for a long silence (it can be expired early), and every minute without an end', () => {
    assert.equal(silenceRecheckAt(now, iso(now + 3_600_000)), now + SILENCE_RECHECK_MS);
    assert.equal(silenceRecheckAt(now, ''), now + SILENCE_RECHECK_MS);
    assert.equal(silenceRecheckAt(now, 'not a date'), now + SILENCE_RECHECK_MS);
  });

  it('never spins: an end already past (clocks that disagree) waits the minimum', () => {
    assert.equal(silenceRecheckAt(now, iso(now - 30_000)), now + SILENCE_RECHECK_MIN_MS);
  });

  it('always waits between the minimum and a minute (any end, any time)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4e12 }), fc.integer({ min: -1e10, max: 1e10 }), (t, d) => {
        const at = silenceRecheckAt(t, iso(Math.max(0, t + d)));
        return at - t >= SILENCE_RECHECK_MIN_MS && at - t <= SILENCE_RECHECK_MS;
      }),
    );
  });
});
