// The one bounded pool of the client layer: how many calls run at once, in what order results come
// back, and what happens after a failure.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Pool } from '../../src/client/pool';

const tick = () => new Promise((r) => setTimeout(r, 2));

/** A call that records how many calls run at once. */
function counted() {
  let running = 0;
  let most = 0;
  const started: number[] = [];
  return {
    started,
    most: () => most,
    call: async (n: number) => {
      started.push(n);
      most = Math.max(most, ++running);
      await tick();
      running--;
      return n * 10;
    },
  };
}

describe('Pool', () => {
  it('runs at most `size` calls at once and returns the results in item order', async () => {
    const c = counted();
    const items = Array.from({ length: 20 }, (_, i) => i);
    assert.deepEqual(
      await new Pool(4).map(items, c.call),
      items.map((i) => i * 10),
    );
    assert.equal(c.most(), 4);
  });

  it('caps calls across concurrent lists that share it, and a list by its own concurrency', async () => {
    const c = counted();
    const pool = new Pool(5);
    const items = Array.from({ length: 12 }, (_, i) => i);
    await Promise.all([pool.map(items, c.call, 4), pool.map(items, c.call, 4), pool.run(() => c.call(99))]);
    assert.equal(c.most(), 5);
    const alone = counted();
    await pool.map(items, alone.call, 2);
    assert.equal(alone.most(), 2);
  });

  it('starts nothing after the first failure and rejects with it once the running calls settle', async () => {
    const started: number[] = [];
    let settled = 0;
    const failing = async (n: number) => {
      started.push(n);
      await tick();
      settled++;
      if (n === 0) throw new Error(`item ${n} failed`);
      if (n === 1) throw new Error('a later failure');
      return n;
    };
    await assert.rejects(new Pool(3).map([0, 1, 2, 3, 4, 5, 6, 7], failing), /item 0 failed/);
    assert.deepEqual(started, [0, 1, 2], 'the three running calls, nothing after the failure');
    assert.equal(settled, 3, 'the calls under way finished before the rejection');
  });

  it('hands a freed slot to the caller already waiting: one arriving while it wakes waits its turn', async () => {
    // A caller can arrive in any microtask between a slot being freed and the waiter it was freed
    // for running again; whichever it is, never more than `size` calls may run.
    for (let depth = 0; depth < 8; depth++) {
      const pool = new Pool(1);
      let running = 0;
      let most = 0;
      const call = async () => {
        most = Math.max(most, ++running);
        await tick();
        running--;
      };
      let finish!: () => void;
      const first = pool.run(async () => {
        most = Math.max(most, ++running);
        await new Promise<void>((r) => (finish = r));
        running--;
      });
      const waiting = pool.run(call);
      await tick();
      let late: Promise<void> | undefined;
      let chain: Promise<unknown> = Promise.resolve();
      for (let i = 0; i < depth; i++) chain = chain.then(() => undefined);
      finish();
      await chain.then(() => (late = pool.run(call)));
      await Promise.all([first, waiting, late]);
      assert.equal(most, 1, `a caller arriving ${depth} microtasks after the slot was freed ran beside another`);
    }
  });

  it('answers an empty list without calling anything', async () => {
    assert.deepEqual(await new Pool(2).map([], () => assert.fail('called')), []);
  });
});
