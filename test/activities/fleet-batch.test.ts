// The control worker's reports to the fleet coordinator go one send at a time; those made while a send
// is in flight go together in the next one (issue 12, target 4: one signal-with-start per report,
// serialized by the server on the one coordinator, took ~750 ms each in a storm).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReportBatcher } from '../../src/activities/fleet';
import type { FleetReport } from '../../src/workflows/fleet-definitions';

const opened = (i: number): FleetReport => ({ kind: 'opened', host: 'h', service: `s${i}`, incidentId: 'inc-1' });

/** A send that waits until released by hand, recording what each call carried. */
function handSend() {
  const calls: { services: string[]; release: (err?: Error) => void }[] = [];
  const send = (rs: FleetReport[]) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ services: rs.map((r) => r.service), release: (err) => (err ? reject(err) : resolve()) });
    });
  return { calls, send };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('ReportBatcher', () => {
  it('sends the first report at once and those made meanwhile together, in order', async () => {
    const { calls, send } = handSend();
    const b = new ReportBatcher(send);
    const done: string[] = [];
    const all = [0, 1, 2, 3].map((i) => b.report(opened(i)).then(() => done.push(`s${i}`)));
    await tick();
    assert.deepEqual(
      calls.map((c) => c.services),
      [['s0']],
    );
    calls[0].release();
    await tick();
    assert.deepEqual(done, ['s0'], 'a report resolves once its own send is done');
    assert.deepEqual(
      calls.map((c) => c.services),
      [['s0'], ['s1', 's2', 's3']],
    );
    calls[1].release();
    await Promise.all(all);
    assert.deepEqual(done, ['s0', 's1', 's2', 's3']);
    // Idle again: the next report goes alone, at once.
    const next = b.report(opened(4));
    await tick();
    assert.deepEqual(calls[2].services, ['s4']);
    calls[2].release();
    await next;
  });

  it('fails only the reports of a failed send (each retried by its own activity); later sends go on', async () => {
    const { calls, send } = handSend();
    const b = new ReportBatcher(send);
    const first = b.report(opened(0));
    const second = [1, 2].map((i) => b.report(opened(i)));
    await tick();
    calls[0].release(new Error('unavailable'));
    await assert.rejects(first, /unavailable/);
    await tick();
    assert.deepEqual(calls[1].services, ['s1', 's2']);
    calls[1].release();
    await Promise.all(second);
  });

  it('a caller that gives up takes its waiting report out: a retry cannot deliver it twice', async () => {
    const { calls, send } = handSend();
    const b = new ReportBatcher(send);
    const first = b.report(opened(0));
    const ctl = new AbortController();
    const gaveUp = b.report(opened(1), ctl.signal);
    const kept = b.report(opened(2));
    ctl.abort(new Error('activity timed out'));
    await assert.rejects(gaveUp, /timed out/);
    calls[0].release();
    await first;
    await tick();
    assert.deepEqual(
      calls.map((c) => c.services),
      [['s0'], ['s2']],
    );
    calls[1].release();
    await kept;
  });

  it('puts at most max reports in one send', async () => {
    const { calls, send } = handSend();
    const b = new ReportBatcher(send, 2);
    const all = [0, 1, 2, 3, 4].map((i) => b.report(opened(i)));
    for (let i = 0; i < 3; i++) {
      await tick();
      calls[i].release();
    }
    await Promise.all(all);
    assert.deepEqual(
      calls.map((c) => c.services),
      [['s0'], ['s1', 's2'], ['s3', 's4']],
    );
  });
});
