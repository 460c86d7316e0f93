// `selfheal simulate` on a checked-in alert history whose answers are known by hand
// (fixtures/flapping.jsonl): the real workflow on the real time-skipping test server.
//   web.service fires 6 times in an hour (down 5 min every 10 min): under the defaults, 3 restarts,
//     3 refused by the hourly budget, one SelfHealingExhausted; with maxRestartsPerHour: 5, 5 restarts.
//   api.service resolves 60 s after firing, inside the 2 min validation window: no restart.
//   db.service: one outage, one restart, 2 min after the alert.
//   An unknown service, a hostile name and an alert about selfheal itself: not acted on, as the webhook.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { planAlerts } from '../../src/client/alert-intake';
import { loadConfig } from '../../src/config/config';
import { simulate, type SimulationResult } from '../../src/simulate/driver';
import { buildReport, type ServiceReport, type SimulationReport } from '../../src/simulate/report';
import { historyFromDeliveries } from '../../src/simulate/sources';
import { compareReports, formatComparison } from '../../src/simulate/text';
import { marksOf } from '../../src/simulate/timeline';

const FIXTURES = join(__dirname, 'fixtures');
const history = historyFromDeliveries(join(FIXTURES, 'flapping.jsonl'));
const defaults = loadConfig(join(FIXTURES, 'defaults.yaml'));
const budget5 = loadConfig(join(FIXTURES, 'budget5.yaml'));
const flapping = loadConfig(join(FIXTURES, 'flapping.yaml'));
const flapHold = loadConfig(join(FIXTURES, 'flap-hold.yaml'));

const runs = new Map<string, Promise<{ result: SimulationResult; report: SimulationReport }>>();
const configs = { defaults, budget5, 'as-recorded': defaults, flapping, 'flap-hold': flapHold };
function run(name: keyof typeof configs) {
  let p = runs.get(name);
  if (!p) {
    p = simulate({
      config: configs[name],
      history,
      recovery: name === 'as-recorded' ? 'as-recorded' : 'restart-fixes',
    }).then((result) => ({ result, report: buildReport(result, 'flapping.jsonl') }));
    runs.set(name, p);
  }
  return p;
}
/** Simulated durations carry about a second of jitter (the test server's clock runs while work is in progress). */
const near = (actual: number | null, expected: number, what: string) =>
  assert.ok(actual != null && Math.abs(actual - expected) <= 5, `${what}: ${actual} is not about ${expected}`);
const svc = (r: SimulationReport, service: string): ServiceReport => r.services.find((s) => s.service === service)!;

describe('simulate: known answers', { timeout: 180_000 }, () => {
  it('a service that flapped 6 times in an hour: 3 restarts and one SelfHealingExhausted under the defaults', async () => {
    const { report } = await run('defaults');
    const web = svc(report, 'web.service');
    assert.equal(web.incidents, 6);
    assert.equal(web.restarts, 3);
    assert.deepEqual(web.refused, { cooldown: 0, budget: 3, breaker: 0 });
    assert.equal(web.escalations.SelfHealingExhausted, 1);
    assert.equal(
      Object.values(web.escalations).reduce((a, b) => a + b, 0),
      1,
    );
    // Validation is 2 minutes: every restart comes 120 s after its alert.
    assert.equal(web.alertToRestart.count, 3);
    near(web.alertToRestart.p50, 120, 'p50');
    near(web.alertToRestart.p95, 120, 'p95');
    // Held from each refusal (hh:52, :42, :32... ) until the recorded resolve 3 minutes later.
    near(web.heldSeconds, 3 * 180, 'held');
  });

  it('under the built-in flap detection the 5th incident escalates ServiceFlapping and waits for a human', async () => {
    const { report } = await run('flapping');
    const web = svc(report, 'web.service');
    assert.equal(web.incidents, 6);
    assert.equal(web.restarts, 3, 'the budget still allows 3');
    assert.equal(web.escalations.ServiceFlapping, 1);
  });

  it('an incident held for a human because the service flaps counts as time held', async () => {
    // 10 restarts an hour: incidents 1 to 4 restart; the 5th and 6th are held (hold-flapping) from
    // the end of validation (+2 min) until the recorded resolve (+5 min): 2 × 180 s.
    const { report, result } = await run('flap-hold');
    const web = svc(report, 'web.service');
    assert.equal(web.restarts, 4);
    assert.equal(web.escalations.ServiceFlapping, 1);
    const holds = result.records.filter((r) => r.service === 'web.service' && r.decision === 'hold-flapping');
    assert.equal(holds.length, 2);
    near(web.heldSeconds, 2 * 180, 'held');
    // The timeline draws them as held too.
    const marks = marksOf(
      result.records.filter((r) => r.service === 'web.service'),
      result.to,
    );
    assert.equal(marks.held.length, 2);
  });

  it('the same history under maxRestartsPerHour: 5 gives 5 restarts', async () => {
    const { report } = await run('budget5');
    const web = svc(report, 'web.service');
    assert.equal(web.restarts, 5);
    assert.deepEqual(web.refused, { cooldown: 0, budget: 1, breaker: 0 });
    assert.equal(web.escalations.SelfHealingExhausted, 1);
  });

  it('an alert that resolves inside the validation window gives no restart', async () => {
    const { report, result } = await run('defaults');
    const api = svc(report, 'api.service');
    assert.equal(api.incidents, 1);
    assert.equal(api.restarts, 0);
    const events = result.records.filter((r) => r.service === 'api.service').map((r) => r.event);
    assert.deepEqual(events, ['incident-opened', 'validation-cancelled', 'incident-closed']);
  });

  it('--compare reports exactly the differences between the two policies', async () => {
    const a = (await run('defaults')).report;
    const b = (await run('budget5')).report;
    const diffs = compareReports(a, b);
    assert.deepEqual(
      diffs.map((d) => [d.service, d.metric, ...(d.metric === 'time held (s)' ? [] : [d.a, d.b])]),
      [
        ['web.service on app1', 'restarts', 3, 5],
        ['web.service on app1', 'refused by budget', 3, 1],
        ['web.service on app1', 'time held (s)'],
        ['total', 'restarts', 4, 6],
        ['total', 'refused by budget', 3, 1],
        ['total', 'time held (s)'],
      ],
    );
    near(diffs[2].a, 540, 'held under the defaults');
    near(diffs[2].b, 180, 'held with 5 restarts per hour');
    const text = formatComparison(a, b);
    const marked = text.split('\n').filter((l) => l.startsWith('*'));
    assert.equal(marked.length, 6, text);
    assert.match(text, /Differences \(6\):\n {2}web\.service on app1: restarts 3 → 5\n/);
  });

  it('alerts the webhook would not act on are not acted on here either, counted by the same planning', async () => {
    const { report, result } = await run('defaults');
    const expected: Record<string, number> = {};
    for (const d of history.deliveries) {
      const plan = planAlerts(defaults, d.alerts);
      for (const x of [...plan.ignored, ...plan.rejected]) expected[x.kind] = (expected[x.kind] ?? 0) + 1;
    }
    assert.deepEqual(report.notActedOn, expected);
    assert.deepEqual(report.notActedOn, { 'unknown-service': 1, 'invalid-name': 1, 'ignored-alertname': 1 });
    assert.deepEqual(
      report.services.map((s) => `${s.service}@${s.host}`),
      ['api.service@app1', 'web.service@app1', 'db.service@app2'],
    );
    assert.ok(
      !result.records.some(
        (r) => r.service !== 'web.service' && r.service !== 'api.service' && r.service !== 'db.service',
      ),
    );
  });

  it('as-recorded: a restart does not end an outage early, so verification fails until the alert resolves', async () => {
    const { result, report } = await run('as-recorded');
    // Restarts at +2, +3.5 and +5 min all fail verification, each after the whole verifyTimeout
    // (90 s, as the host's verification takes: longer than the 60 s cooldown, so each restart follows
    // the previous failure at once); the third failure exceeds maxConsecutiveFailures (2) at +6.5 min:
    // escalated, held until the resolve at +10 min.
    const db = svc(report, 'db.service');
    assert.equal(db.restarts, 3);
    assert.equal(db.escalations.ConsecutiveFailures, 1);
    near(db.heldSeconds, 3.5 * 60, 'held');
    const at = (event: string) =>
      result.records
        .filter((r) => r.service === 'db.service' && r.event === event)
        .map((r) => (Date.parse(r.time) - Date.parse('2026-11-02T13:00:00Z')) / 1000);
    at('restart').forEach((t, i) => near(t, [120, 210, 300][i], `restart ${i + 1}`));
    at('attempt-finished').forEach((t, i) => near(t, [210, 300, 390][i], `attempt ${i + 1} failed`));
    const first = result.records.find((r) => r.service === 'db.service' && r.event === 'attempt-finished');
    assert.equal(first?.result, 'failure');
    // db.service was down 10 minutes; verification (90 s) after the restart at +2 min cannot see it back.
    const closed = result.records.filter((r) => r.service === 'db.service' && r.event === 'incident-closed');
    assert.equal(closed.length, 1);
    // It closes when the recorded alert resolved, whatever was done.
    assert.ok(Math.abs(Date.parse(closed[0].time) - Date.parse('2026-11-02T13:10:00Z')) < 1_000, closed[0].time);
    assert.equal(closed[0].decision, 'resolved');
  });

  it("a verification takes the simulated time the host's would: the stable period when the restart fixed it", async () => {
    // restart-fixes: the service is up at the restart, so verification ends after verifyStableFor
    // (10 s by default); the restart slot is held meanwhile, as on a real host.
    const { result } = await run('defaults');
    const db = result.records.filter((r) => r.service === 'db.service');
    const restart = db.find((r) => r.event === 'restart')!;
    const finished = db.find((r) => r.event === 'attempt-finished')!;
    assert.equal(finished.result, 'success');
    near((Date.parse(finished.time) - Date.parse(restart.time)) / 1000, 10, 'restart to verified');
  });

  it('results are in recorded time', async () => {
    const { result } = await run('defaults');
    const opened = result.records.find((r) => r.service === 'db.service' && r.event === 'incident-opened')!;
    assert.ok(Math.abs(Date.parse(opened.time) - Date.parse('2026-11-02T13:00:00Z')) < 1_000, opened.time);
  });

  it('dates written into decisions are in recorded time too (the budget\'s "no restart until ...")', async () => {
    const { result } = await run('defaults');
    const refusals = result.records.filter((r) => r.service === 'web.service' && r.decision === 'refuse-budget');
    assert.equal(refusals.length, 3);
    for (const r of refusals) {
      const until = /until (\S+Z)/.exec(r.reason)?.[1];
      assert.ok(until, r.reason);
      // The budget frees an hour after the first restart of the window: within the hour after the refusal.
      const ahead = Date.parse(until) - Date.parse(r.time);
      assert.ok(ahead > 0 && ahead <= 3_600_000, `${r.time}: ${r.reason}`);
    }
  });
});
