// End to end on real parts: a systemd user manager running crypto agents, the real Prometheus with
// the shipped rules, the real Alertmanager with the shipped routing, and the real `selfheal start`.
// Nothing is faked between an agent going down and systemd restarting it.
//
// One harness for the file. The incident scenarios use different agents and run concurrently
// (each incident needs the rule's 30 s `for`, so running them one after another would take much
// longer); the checks of what was recorded (audit log, Prometheus) run after all of them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../helpers/wait';
import { Harness } from './harness';

const BTC = 'BTC_USDT'; // Test 1: stopped
const ETH = 'ETH_USDT'; // stalled (alive, no progress)
const SOL = 'SOL_USDT'; // budget: four incidents in the hour
const XRP = 'XRP_USDT'; // healthy the whole time: must never be touched
const FAIL = 'FAIL_USDT'; // exits 1 at every start

let h: Harness;
let xrpAtStart: { MainPID: number; InvocationID: string };

before(
  async () => {
    h = await Harness.start({ agents: [BTC, ETH, SOL, XRP], failing: [FAIL] });
    xrpAtStart = await h.unit(XRP);
  },
  { timeout: 240_000 },
);

after(
  async () => {
    await h?.stop();
  },
  { timeout: 60_000 },
);

const watch: Harness['watch'] = (...args) => h.watch(...args);

function assertInOrder(seen: string[], expected: string[], what: string): void {
  let at = -1;
  for (const p of expected) {
    const i = seen.indexOf(p, at + 1);
    assert.ok(i > at, `${what}: expected ${expected.join(' → ')} in order, saw ${seen.join(' → ')}`);
    at = i;
  }
}

/** Stops the agent's unit and waits until selfheal restarted it and verified the restart. */
async function stopAndWaitForRestart(instance: string, restartsBefore: number) {
  const before = await h.unit(instance);
  assert.equal(before.ActiveState, 'active', `${instance} should be running before it is stopped`);
  await h.systemctl('stop', '--', h.service(instance));
  assert.equal((await h.unit(instance)).ActiveState, 'inactive');
  const watched = await watch(
    instance,
    (s) => s.phase === 'idle' && s.totals.restarts === restartsBefore + 1,
    `${instance}: restart number ${restartsBefore + 1} verified and the workflow idle again`,
    150_000,
  );
  const after = await h.unit(instance);
  return { before, after, ...watched };
}

const waitResolved = (instance: string) => h.waitResolved(instance);

describe('incidents on real parts', { concurrency: true }, () => {
  it(
    'Test 1: a stopped unit is detected, alerted, validated, restarted and verified',
    { timeout: 240_000 },
    async () => {
      const svc = h.service(BTC);
      const before = await h.unit(BTC);
      assert.equal(before.ActiveState, 'active');
      await h.systemctl('stop', '--', svc);
      assert.equal((await h.unit(BTC)).ActiveState, 'inactive');

      // Prometheus: the shipped rule fires (reason down, the copy routed to selfheal).
      const alert = await h.until(
        () => h.promAlert('ServiceStalled', { service: svc, audience: 'selfheal' }, 'firing'),
        'ServiceStalled firing in Prometheus for BTC',
        90_000,
      );
      assert.equal(alert.labels.host, h.host);
      assert.equal(alert.labels.reason, 'down');
      // Alertmanager has it, routed to the selfheal receiver.
      const inAm = await h.until(
        async () =>
          (await h.amAlerts()).find(
            (a) =>
              a.labels.service === svc && a.labels.audience === 'selfheal' && a.labels.alertname === 'ServiceStalled',
          ),
        'the alert in Alertmanager',
        30_000,
      );
      assert.deepEqual(
        inAm.receivers.map((r) => r.name),
        ['selfheal'],
      );

      const { state, phases, firstIncident } = await watch(
        BTC,
        (s) => s.phase === 'idle' && s.totals.restarts === 1,
        'BTC restarted, verified and idle',
        120_000,
      );
      // The webhook delivered it: the incident carries the alert's name and its summary annotation.
      assert.ok(firstIncident?.incident, 'the workflow was seen with an open incident');
      assert.deepEqual(firstIncident.incident.alertnames, ['ServiceStalled']);
      assert.match(firstIncident.incident.summary ?? '', /crypto-agent@BTC_USDT\.service on homelab is down/);
      assertInOrder(phases, ['validating', 'verifying', 'idle'], 'BTC phases');

      const last = state.recentAttempts[state.recentAttempts.length - 1];
      assert.equal(state.recentAttempts.length, 1);
      assert.equal(last.result, 'success');
      assert.equal(last.reason, 'verified');
      assert.equal(last.restarted, true);
      assert.equal(state.consecutiveFailures, 0);
      assert.equal(state.incident, null);
      assert.equal(state.status, 'OK');

      // systemd: running again, as a new process and a new invocation.
      const after = await h.unit(BTC);
      assert.equal(after.ActiveState, 'active');
      assert.notEqual(after.MainPID, before.MainPID);
      assert.notEqual(after.InvocationID, before.InvocationID);
      assert.equal(h.starts(BTC), 2, 'started once by the harness and once by selfheal');
    },
  );

  it(
    'a stalled agent (alive, no progress) is restarted, after which it makes progress again',
    { timeout: 240_000 },
    async () => {
      const svc = h.service(ETH);
      const before = await h.unit(ETH);
      assert.equal(before.ActiveState, 'active');
      await h.stall(ETH);
      assert.ok((await h.progress(ETH)) < Date.now() / 1000 - 590, 'progress backdated by 10 minutes');

      const alert = await h.until(
        () => h.promAlert('ServiceStalled', { service: svc, audience: 'selfheal' }, 'firing'),
        'ServiceStalled (stalled) firing in Prometheus for ETH',
        90_000,
      );
      assert.equal(alert.labels.reason, 'stalled');
      // Stalled, not down: the same process is still running.
      const during = await h.unit(ETH);
      assert.equal(during.ActiveState, 'active');
      assert.equal(during.MainPID, before.MainPID);

      const { state, phases } = await watch(
        ETH,
        (s) => s.phase === 'idle' && s.totals.restarts === 1,
        'ETH restarted, verified and idle',
        120_000,
      );
      assertInOrder(phases, ['validating', 'verifying', 'idle'], 'ETH phases');
      assert.equal(state.recentAttempts[state.recentAttempts.length - 1].result, 'success');
      // The unit was active at re-check: only Prometheus could confirm the stall.
      const recheck = h.audit().find((r) => r.service === svc && r.event === 'recheck');
      assert.equal(recheck?.decision, 'confirmed');

      const after = await h.unit(ETH);
      assert.equal(after.ActiveState, 'active');
      assert.notEqual(after.MainPID, before.MainPID);

      // Progress moves again: recent, and advancing.
      const p1 = await h.until(
        async () => {
          const p = await h.progress(ETH);
          return p > Date.now() / 1000 - 5 ? p : null;
        },
        'ETH to report recent progress',
        15_000,
      );
      await h.until(async () => (await h.progress(ETH)) > p1, 'ETH progress to advance', 10_000);
      // And Prometheus sees it too.
      await h.until(
        async () => {
          const [s] = await h.query(`selfhealing:stall_duration:seconds{service="${svc}"}`);
          return s && s.value < 10;
        },
        'Prometheus stall duration of ETH back under 10 s',
        30_000,
      );
    },
  );

  it(
    'a unit that fails at every start escalates ConsecutiveFailures; approve gives one attempt; skip watches again',
    { timeout: 300_000 },
    async () => {
      const svc = h.service(FAIL);
      const workflowId = h.workflowId(FAIL);
      // The harness started it once (and it failed); every further start is a restart by selfheal.
      const startsBefore = 1;
      assert.equal((await h.unit(FAIL)).ActiveState, 'failed');

      const esc = await h.until(
        () => h.sink.events().find((e) => e.event === 'ConsecutiveFailures' && e.service === svc),
        'the ConsecutiveFailures escalation at the webhook sink',
        180_000,
      );
      assert.equal(esc.host, h.host);
      assert.equal(esc.workflowId, workflowId);
      assert.equal(esc.consecutiveFailures, 3);
      assert.equal(esc.restartsLastHour, 3);
      assert.equal(typeof esc.message, 'string');
      assert.match(esc.message as string, /crypto-agent@FAIL_USDT\.service/);

      const escalated = await watch(FAIL, (s) => s.phase === 'escalated', 'FAIL escalated', 30_000);
      assert.equal(escalated.state.status, 'CRITICAL');
      assert.equal(escalated.state.consecutiveFailures, 3);
      assert.equal(escalated.state.totals.restarts, 3);
      assert.deepEqual(
        escalated.state.recentAttempts.map((a) => [a.result, a.restarted, a.approved]),
        [
          ['failure', true, false],
          ['failure', true, false],
          ['failure', true, false],
        ],
      );
      assert.equal(h.starts(FAIL), startsBefore + 3, 'systemd started it three more times');
      assert.equal((await h.unit(FAIL)).ActiveState, 'failed');
      // Prometheus sees it too: the ConsecutiveFailures alert fires from selfheal's gauge.
      await h.until(
        () => h.promAlert('ConsecutiveFailures', { service: svc }, 'firing'),
        'ConsecutiveFailures firing in Prometheus',
        30_000,
      );

      // A human approves one more attempt, through the real CLI.
      const approve = await h.cli('approve', svc, '--host', h.host, '--reason', 'e2e: one more try', '--by', 'e2e');
      assert.equal(approve.code, 0, `selfheal approve: ${approve.stdout}${approve.stderr}`);
      const afterApprove = await watch(
        FAIL,
        (s) => s.phase === 'escalated' && s.totals.restarts === 4,
        'the approved attempt to finish',
        60_000,
      );
      const attempts = afterApprove.state.recentAttempts;
      assert.equal(attempts.length, 4);
      assert.equal(attempts.filter((a) => a.approved).length, 1, 'exactly one approved attempt');
      assert.equal(attempts[3].approved, true);
      assert.equal(attempts[3].result, 'failure');
      assert.equal(afterApprove.state.consecutiveFailures, 4);
      assert.equal(h.starts(FAIL), startsBefore + 4, 'exactly one more start');

      // Skip drops the incident: watching again, failures reset.
      const skip = await h.cli('skip', svc, '--host', h.host, '--reason', 'e2e: looking into it', '--by', 'e2e');
      assert.equal(skip.code, 0, `selfheal skip: ${skip.stdout}${skip.stderr}`);
      const skipped = await watch(FAIL, (s) => s.phase === 'idle', 'FAIL idle after skip', 30_000);
      assert.equal(skipped.state.consecutiveFailures, 0);
      assert.equal(skipped.state.incident, null);
      assert.equal(skipped.state.status, 'OK');
      assert.equal(h.starts(FAIL), startsBefore + 4, 'no start after the skip');
      const human = h
        .audit()
        .filter((r) => r.service === svc && (r.event === 'approved' || r.event === 'skipped'))
        .map((r) => [r.event, r.by]);
      assert.deepEqual(human, [
        ['approved', 'e2e'],
        ['skipped', 'e2e'],
      ]);
    },
  );

  it('four incidents inside the hour: three restarts, then SelfHealingExhausted', { timeout: 420_000 }, async () => {
    const svc = h.service(SOL);
    for (let n = 0; n < 3; n++) {
      const r = await stopAndWaitForRestart(SOL, n);
      assert.equal(r.after.ActiveState, 'active', `restart ${n + 1}: active again`);
      assert.notEqual(r.after.MainPID, r.before.MainPID, `restart ${n + 1}: a new process`);
      assert.equal(r.state.restartsLastHour, n + 1);
      await waitResolved(SOL);
    }
    assert.equal(h.starts(SOL), 4);

    // The fourth incident: the budget (3 per hour) is used up.
    await h.systemctl('stop', '--', svc);
    const esc = await h.until(
      () => h.sink.events().find((e) => e.event === 'SelfHealingExhausted' && e.service === svc),
      'the SelfHealingExhausted escalation at the webhook sink',
      150_000,
    );
    assert.equal(esc.host, h.host);
    assert.equal(esc.workflowId, h.workflowId(SOL));
    assert.equal(esc.restartsLastHour, 3);
    assert.equal(esc.consecutiveFailures, 0);
    assert.equal(typeof esc.message, 'string');

    const { state } = await watch(SOL, (s) => s.phase === 'exhausted', 'SOL exhausted', 30_000);
    assert.equal(state.status, 'CRITICAL');
    assert.equal(state.totals.incidents, 4);
    assert.equal(state.totals.restarts, 3);
    assert.equal(state.restartsLastHour, 3);
    assert.ok(state.budgetFreesAt, 'the state says when the budget frees up');
    // Not restarted: still down, no new start.
    assert.equal((await h.unit(SOL)).ActiveState, 'inactive');
    assert.equal(h.starts(SOL), 4);

    // Prometheus: the SelfHealingExhausted alert fires (from selfheal's metrics) ...
    const alert = await h.until(
      () => h.promAlert('SelfHealingExhausted', { service: svc, host: h.host }, 'firing'),
      'SelfHealingExhausted firing in Prometheus',
      30_000,
    );
    assert.equal(alert.labels.severity, 'critical');
    // ... and Alertmanager pages the admin with it.
    await h.until(
      () =>
        h.adminSink.received.find((r) =>
          ((r.body as { alerts?: { labels: Record<string, string> }[] }).alerts ?? []).some(
            (a) => a.labels.alertname === 'SelfHealingExhausted' && a.labels.service === svc,
          ),
        ),
      "SelfHealingExhausted at Alertmanager's admin receiver",
      30_000,
    );
    assert.equal(h.starts(SOL), 4, 'still no restart');
  });
});

describe('what was recorded', () => {
  it('Test 2: the audit log holds one JSON line per decision, with time, host, service, workflowId, event, decision, reason', async () => {
    const records = h.audit();
    assert.ok(records.length > 0, 'the audit log is empty');
    for (const r of records) {
      const line = JSON.stringify(r);
      for (const k of ['time', 'host', 'service', 'workflowId', 'event', 'decision', 'reason'] as const) {
        assert.equal(typeof r[k], 'string', `${k} in ${line}`);
        assert.ok((r[k] as string).length > 0, `${k} is empty in ${line}`);
      }
      assert.ok(Number.isFinite(Date.parse(r.time)), `time in ${line}`);
      assert.equal(r.host, h.host, line);
      assert.equal(r.workflowId, `selfheal/${r.host}/${r.service}`, line);
    }
    // One line per decision: never the same decision twice.
    const lines = records.map((r) => JSON.stringify(r));
    assert.equal(new Set(lines).size, lines.length, 'a line appears twice');

    for (const instance of [BTC, ETH, SOL, FAIL]) {
      const svc = h.service(instance);
      const mine = records.filter((r) => r.service === svc);
      const state = await h.state(instance);
      assert.ok(state, `${instance} has a workflow`);
      const count = (event: string) => mine.filter((r) => r.event === event).length;
      assert.equal(count('incident-opened'), state.totals.incidents, `${instance}: incidents`);
      assert.equal(count('restart'), state.totals.restarts, `${instance}: restart decisions`);
      assert.equal(count('restart'), h.starts(instance) - 1, `${instance}: restart decisions vs. starts systemd saw`);
      assert.equal(count('escalated'), state.totals.escalations, `${instance}: escalations`);
      // Each incident opened once and closed at most once; each attempt: one restart decision, one outcome.
      for (const id of new Set(mine.map((r) => r.incidentId).filter(Boolean))) {
        const of = (event: string) => mine.filter((r) => r.incidentId === id && r.event === event).length;
        assert.equal(of('incident-opened'), 1, `${instance} ${id}: opened`);
        assert.ok(of('incident-closed') <= 1, `${instance} ${id}: closed ${of('incident-closed')} times`);
      }
      const attemptIds = [...new Set(mine.filter((r) => r.attemptId).map((r) => r.attemptId))];
      for (const id of attemptIds) {
        const of = (event: string) => mine.filter((r) => r.attemptId === id && r.event === event).length;
        assert.equal(of('restart'), 1, `${instance} ${id}: restart lines`);
        assert.equal(of('attempt-finished'), 1, `${instance} ${id}: outcome lines`);
      }
    }
    const btc = records.filter((r) => r.service === h.service(BTC)).map((r) => `${r.event}:${r.decision}`);
    // Waiting for a restart slot (fleet.maxRestartsInFlightPerHost, 2: SOL and FAIL restart at the same
    // time) is legitimate on a slow machine: it adds a hold, its release and a second re-check.
    const slotWait = ['held:hold-concurrency', 'released:recheck', 'recheck:confirmed'];
    for (let i = btc.indexOf(slotWait[0]); i >= 0; i = btc.indexOf(slotWait[0])) {
      assert.deepEqual(btc.slice(i, i + 3), slotWait, `BTC waited for a slot: ${btc.join(', ')}`);
      btc.splice(i, 3);
    }
    assert.deepEqual(btc, [
      'incident-opened:validate',
      'recheck:confirmed',
      'restart:restart',
      'attempt-finished:recovered',
      'incident-closed:verified',
    ]);
  });

  it('Test 3: increase(selfhealing_restarts_total[1h]) in Prometheus equals the restarts performed', async () => {
    for (const instance of [BTC, ETH, SOL, FAIL, XRP]) {
      const svc = h.service(instance);
      // What systemd saw: every start after the harness's first one was a restart by selfheal.
      const performed = h.starts(instance) - 1;
      const expr = `sum by (host, service) (increase(selfhealing_restarts_total{host="${h.host}",service="${svc}"}[1h]))`;
      // increase() extrapolates: it scales the rise between the first and the last sample in the
      // window out to the window's edges. Towards the start it stops where the counter would reach
      // zero (selfheal exports it at 0 from its start), but towards the end it adds up to one scrape
      // interval past the last sample, so 3 restarts read as about 3.02. Rounding gives the count back;
      // the raw value must still be within half a restart of it.
      let last: { value: number }[] = [];
      const settled = await waitFor(
        async () => {
          last = await h.query(expr);
          return last.length === 1 && Math.round(last[0].value) === performed;
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      ).catch(() => false);
      assert.ok(settled, `${instance}: round(${expr}) should be ${performed}; Prometheus says ${JSON.stringify(last)}`);
      const sample = last[0];
      assert.ok(Math.abs(sample.value - performed) < 0.5, `${instance}: ${sample.value} vs ${performed}`);
      assert.equal((await h.state(instance))?.totals.restarts ?? 0, performed, `${instance}: the workflow agrees`);
    }
    assert.equal(h.starts(SOL) - 1, 3);
    assert.equal(h.starts(FAIL) - 1, 4);
  });

  it('never touched the agent that stayed healthy', async () => {
    const now = await h.unit(XRP);
    assert.equal(now.ActiveState, 'active');
    assert.equal(now.MainPID, xrpAtStart.MainPID);
    assert.equal(now.InvocationID, xrpAtStart.InvocationID);
    assert.equal(h.starts(XRP), 1);
    assert.equal(await h.state(XRP), null, 'no workflow: no alert ever fired for it');
    assert.equal(await h.promAlert('ServiceStalled', { service: h.service(XRP) }), undefined);
  });
});
