// The chaos suite, fleet safety (issue 10): the mass-failure breaker is open when the control worker
// (which runs the fleet coordinator on queue `selfheal-fleet`) and the Temporal dev server are killed
// with SIGKILL, and it is still open when they are back: same scopes, same trip, no restart of any
// held unit (counted by the unit itself), the held incidents still held, and a new incident after
// the crash is held too. The breaker's state lives in the coordinator workflow, not in a process.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BreakerView } from '../../src/workflows/fleet-definitions';
import { Cluster, HOST } from './cluster';

// Six services on the host; more than half (4) with an open incident trips the breaker.
const UNITS = Array.from({ length: 6 }, (_, i) => `fleet-${i}.service`);
const DOWN = UNITS.slice(0, 4);
/** Goes down after the crash: its incident must be held by the breaker the restarted coordinator kept. */
const LATE = UNITS[4];

let cluster: Cluster;

before(async () => {
  // A quiet period longer than the test: nothing but a lost state could close the breaker here.
  cluster = await Cluster.start(
    UNITS.map((name) => ({ name })),
    { fleet: { breaker: { quietPeriod: '1h' } } },
  );
  await cluster.systemd.systemctl('start', ...UNITS);
});

after(async () => {
  await cluster?.stop();
});

async function breakerStatus(): Promise<BreakerView> {
  const r = await cluster.cli('breaker', 'status', '--json');
  assert.equal(r.code, 0, `selfheal breaker status: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as BreakerView;
}

async function breakerApi(): Promise<{ scopes: { scope: string; state: string; since: string }[]; held: unknown[] }> {
  const res = await fetch(`${cluster.apiUrl}/breaker`, {
    headers: { authorization: `Bearer ${cluster.token}` },
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(res.status, 200, `GET /breaker: ${res.status}`);
  return (await res.json()) as { scopes: { scope: string; state: string; since: string }[]; held: unknown[] };
}

async function untilHeldByBreaker(unit: string): Promise<void> {
  await cluster.until(
    async () => {
      const s = await cluster.state(unit);
      return s?.phase === 'held' && s.held?.reason === 'breaker';
    },
    `${unit} held by the breaker`,
    90_000,
  );
}

describe('chaos: the breaker is open when its worker and Temporal are killed', () => {
  it('SIGKILL the control worker and the dev server while open: still open after, no restart, still held', async () => {
    await cluster.systemd.systemctl('stop', ...DOWN);
    const startsBefore = Object.fromEntries(UNITS.map((u) => [u, cluster.starts(u)]));
    // All at once, as a shared cause would (one after another, the first could finish validating first).
    await Promise.all(DOWN.map((u) => cluster.fireUntilAccepted(u)));
    for (const u of DOWN) await untilHeldByBreaker(u);

    const before = await breakerStatus();
    assert.deepEqual(
      before.scopes.map((s) => [s.scope, s.state]),
      [
        ['fleet', 'open'],
        [`host:${HOST}`, 'open'],
      ],
    );
    assert.equal(before.held.length, DOWN.length);
    const trippedAt = before.scopes.map((s) => s.sinceIso);

    // Both at once: the coordinator's worker and Temporal itself; then back, Temporal first.
    await cluster.parts.control.kill();
    await cluster.parts['dev-server'].kill();
    await cluster.parts['dev-server'].start();
    await cluster.parts.control.start();

    // Read through the CLI (the query reaches the restarted coordinator: it replays its history).
    const after = await cluster.until(
      () => breakerStatus().catch(() => null),
      'selfheal breaker status answering after the restart',
      90_000,
      1_000,
    );
    assert.deepEqual(
      after.scopes.map((s) => [s.scope, s.state, s.manual]),
      [
        ['fleet', 'open', false],
        [`host:${HOST}`, 'open', false],
      ],
    );
    assert.deepEqual(
      after.scopes.map((s) => s.sinceIso),
      trippedAt,
      'the same trip, not a new one',
    );
    assert.deepEqual(after.held.map((w) => w.service).sort(), [...DOWN].sort());
    // And through the API.
    const api = await breakerApi();
    assert.deepEqual(
      api.scopes.map((s) => [s.scope, s.state, s.since]),
      [
        ['fleet', 'open', trippedAt[0]],
        [`host:${HOST}`, 'open', trippedAt[1]],
      ],
    );

    // The restarted coordinator acts on the state it kept: a new incident is held too.
    await cluster.systemd.systemctl('stop', LATE);
    await cluster.fireUntilAccepted(LATE);
    await untilHeldByBreaker(LATE);
    for (const u of DOWN) {
      const s = await cluster.state(u);
      assert.equal(s?.phase, 'held', `${u}: ${JSON.stringify(s)}`);
      assert.equal(s?.held?.reason, 'breaker');
      assert.equal(s?.totals.restarts, 0);
    }

    // At the source: no unit was started, nothing was restarted, the breaker tripped once per scope.
    for (const u of UNITS) assert.equal(cluster.starts(u), startsBefore[u], `${u}: starts`);
    const audit = cluster.audit();
    assert.deepEqual(
      audit.filter((r) => r.event === 'restart'),
      [],
    );
    assert.deepEqual(
      audit.filter((r) => r.event === 'breaker').map((r) => `${r.host}:${r.decision}`),
      ['*:trip', `${HOST}:trip`],
    );
    const mass = cluster.sink.events().filter((e) => e.event === 'MassFailure');
    assert.equal(new Set(mass.map((e) => e.id)).size, 1, `one MassFailure: ${JSON.stringify(mass)}`);
    process.stderr.write(
      `chaos breaker: tripped at ${trippedAt.join(', ')}; after the kills: ${after.scopes
        .map((s) => `${s.scope} ${s.state}`)
        .join(', ')}; held ${after.held.length}+1; starts unchanged; MassFailure deliveries ${mass.length}\n`,
    );
  });
});
