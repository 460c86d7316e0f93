import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration } from '../../src/policy/duration';
import {
  afterAttempt,
  budgetFreesAt,
  cooldownUntil,
  decideRestart,
  DEFAULT_POLICY,
  FAILURE_MEMORY_MS,
  failuresInForce,
  HOUR_MS,
  pruneRestarts,
  restartsInWindow,
  statusOf,
  stillUnhealthy,
  type Policy,
  type PolicyState,
} from '../../src/policy/policy';

const T0 = Date.parse('2026-11-28T10:00:00Z');
const min = 60_000;
const policy: Policy = { ...DEFAULT_POLICY };
const state = (over: Partial<PolicyState> = {}): PolicyState => ({
  restarts: [],
  lastAttemptAt: null,
  consecutiveFailures: 0,
  ...over,
});
const decide = (
  s: PolicyState,
  now: number,
  extra: Partial<{ approved: boolean; paused: boolean; policy: Policy }> = {},
) =>
  decideRestart({
    state: s,
    policy: extra.policy ?? policy,
    now,
    approved: extra.approved ?? false,
    paused: extra.paused ?? false,
  });

describe('durations', () => {
  it('parses the forms operators write', () => {
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('1h'), HOUR_MS);
    assert.equal(parseDuration('1h30m'), 90 * min);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('0s'), 0);
  });
  it('rejects what is not a duration', () => {
    for (const bad of ['90', '6os', '', 'm', '1 h', '-5s', '2x']) assert.equal(parseDuration(bad), null, bad);
  });
  it('formats compactly', () => {
    assert.equal(formatDuration(90_000), '1m30s');
    assert.equal(formatDuration(HOUR_MS + 5 * min), '1h5m');
    assert.equal(formatDuration(250), '250ms');
  });
});

describe('cooldown', () => {
  it('refuses a restart within the cooldown of the last attempt and allows it after', () => {
    const s = state({ lastAttemptAt: T0, restarts: [T0] });
    assert.deepEqual(decide(s, T0 + 59_999), { kind: 'cooldown', until: T0 + 60_000 });
    assert.deepEqual(decide(s, T0 + 60_000), { kind: 'restart', approved: false });
    assert.equal(cooldownUntil(s, policy, T0 + 30_000), T0 + 60_000);
    assert.equal(cooldownUntil(s, policy, T0 + 60_000), null);
  });
  it('honours a per-service cooldown', () => {
    const s = state({ lastAttemptAt: T0 });
    assert.equal(decide(s, T0 + 31_000, { policy: { ...policy, cooldownMs: 30_000 } }).kind, 'restart');
  });
});

describe('sliding-hour budget', () => {
  const three = [T0, T0 + 10 * min, T0 + 20 * min];
  it('refuses the 4th restart inside an hour', () => {
    const d = decide(state({ restarts: three, lastAttemptAt: T0 + 20 * min }), T0 + 30 * min);
    assert.deepEqual(d, { kind: 'exhausted', until: T0 + HOUR_MS });
  });
  it('allows it again once the oldest restart falls out of the hour', () => {
    const s = state({ restarts: three, lastAttemptAt: T0 + 20 * min });
    assert.equal(decide(s, T0 + HOUR_MS - 1).kind, 'exhausted');
    assert.equal(decide(s, T0 + HOUR_MS).kind, 'restart');
  });
  it('counts only restarts inside (now - 1h, now]', () => {
    assert.deepEqual(restartsInWindow([T0 - HOUR_MS, T0 - HOUR_MS + 1, T0], T0), [T0 - HOUR_MS + 1, T0]);
    assert.deepEqual(pruneRestarts([T0, T0 - 2 * HOUR_MS, T0 - min], T0), [T0 - min, T0]);
  });
  it('computes when a slot frees with more restarts than the limit (approved extras)', () => {
    const five = [T0, T0 + 1 * min, T0 + 2 * min, T0 + 3 * min, T0 + 4 * min];
    assert.equal(budgetFreesAt(five, policy, T0 + 5 * min), T0 + 2 * min + HOUR_MS);
    assert.equal(budgetFreesAt([T0], policy, T0 + min), T0 + min);
  });
  it('a budget of 0 never restarts on its own', () => {
    assert.equal(decide(state(), T0, { policy: { ...policy, maxRestartsPerHour: 0 } }).kind, 'exhausted');
  });
});

describe('decision order', () => {
  const exhausted = state({ restarts: [T0, T0 + min, T0 + 2 * min], lastAttemptAt: T0 + 2 * min });
  it('an approval overrides cooldown, budget and pause', () => {
    assert.deepEqual(decide(exhausted, T0 + 2 * min + 1, { approved: true, paused: true }), {
      kind: 'restart',
      approved: true,
    });
  });
  it('dry-run never acts, even when approved', () => {
    assert.equal(decide(state(), T0, { approved: true, policy: { ...policy, mode: 'dry-run' } }).kind, 'dry-run');
  });
  it('a pause holds before cooldown and budget are considered', () => {
    assert.equal(decide(exhausted, T0 + 3 * min, { paused: true }).kind, 'paused');
  });
  it('approval mode asks a human when policy would allow a restart', () => {
    assert.equal(decide(state(), T0, { policy: { ...policy, mode: 'approval' } }).kind, 'needs-approval');
    assert.equal(decide(exhausted, T0 + 5 * min, { policy: { ...policy, mode: 'approval' } }).kind, 'exhausted');
  });
});

describe('escalation thresholds', () => {
  it('escalates when consecutive failures exceed the limit (more than 2 by default)', () => {
    assert.deepEqual(afterAttempt(0, false, policy), { consecutiveFailures: 1, escalate: false });
    assert.deepEqual(afterAttempt(1, false, policy), { consecutiveFailures: 2, escalate: false });
    assert.deepEqual(afterAttempt(2, false, policy), { consecutiveFailures: 3, escalate: true });
    assert.deepEqual(afterAttempt(3, false, policy), { consecutiveFailures: 4, escalate: true });
  });
  it('a success resets the count', () => {
    assert.deepEqual(afterAttempt(3, true, policy), { consecutiveFailures: 0, escalate: false });
  });
  it('follows a per-service limit', () => {
    assert.equal(afterAttempt(0, false, { ...policy, maxConsecutiveFailures: 0 }).escalate, true);
  });
});

describe('re-check and status', () => {
  it('acts on a unit that is not active, whatever the alert says', () => {
    assert.equal(stillUnhealthy({ unitActive: false, alertStillFiring: false, firingSignalled: false }), true);
  });
  it('trusts Prometheus for an active unit (a stall), else the alert state', () => {
    assert.equal(stillUnhealthy({ unitActive: true, alertStillFiring: true, firingSignalled: false }), true);
    assert.equal(stillUnhealthy({ unitActive: true, alertStillFiring: false, firingSignalled: true }), false);
    assert.equal(stillUnhealthy({ unitActive: true, alertStillFiring: null, firingSignalled: true }), true);
    assert.equal(stillUnhealthy({ unitActive: true, alertStillFiring: null, firingSignalled: false }), false);
  });
  it('maps phases to OK / HEALING / CRITICAL', () => {
    assert.equal(statusOf('idle', false), 'OK');
    assert.equal(statusOf('paused', false), 'OK');
    assert.equal(statusOf('paused', true), 'HEALING');
    assert.equal(statusOf('validating', true), 'HEALING');
    assert.equal(statusOf('cooldown', true), 'HEALING');
    assert.equal(statusOf('exhausted', true), 'CRITICAL');
    assert.equal(statusOf('escalated', true), 'CRITICAL');
  });
});

describe('failure memory', () => {
  it('keeps consecutive failures for an hour after the last one, then forgets them', () => {
    const t = 1_000_000_000;
    assert.equal(failuresInForce(2, t, t + 1), 2);
    assert.equal(failuresInForce(2, t, t + FAILURE_MEMORY_MS), 2);
    assert.equal(failuresInForce(2, t, t + FAILURE_MEMORY_MS + 1), 0);
    assert.equal(failuresInForce(2, null, t), 2, 'state from before the time was recorded keeps its count');
    assert.equal(failuresInForce(0, t, t), 0);
  });
});
