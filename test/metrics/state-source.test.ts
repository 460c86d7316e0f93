// The state gauges' source past QUERY_ALL_LIMIT services: the visibility index gives phase and status
// but not why a held incident waits, so the held ones are asked (bounded), and only the rest, or a
// failed read, count as `unknown`.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ServiceActions, ServiceSummary } from '../../src/client/actions';
import type { Config } from '../../src/config/config';
import { HELD_REASON_QUERY_LIMIT, workflowStateSource } from '../../src/metrics/state-source';
import type { ServiceGaugeState } from '../../src/metrics/state-gauges';
import type { ServiceStateView } from '../../src/workflows/definitions';

const config = { api: { temporalTimeoutMs: 10_000 } } as Config;
const summary = (i: number, phase: ServiceSummary['phase']): ServiceSummary => ({
  host: 'h',
  service: `s${i}.service`,
  workflowId: `selfheal/h/s${i}.service`,
  exists: true,
  phase,
  status: phase === 'idle' ? 'OK' : 'HEALING',
  consecutiveFailures: 0,
});

/** An index listing `held` held services and 10 validating ones; `state` answers per service. */
function indexedActions(held: number, answer: (service: string) => ServiceStateView | null | Error) {
  const asked: string[] = [];
  const actions = {
    indexed: () => true,
    listFromVisibility: async () => [
      ...Array.from({ length: held }, (_, i) => summary(i, 'held')),
      ...Array.from({ length: 10 }, (_, i) => summary(held + i, 'validating')),
    ],
    state: async (_host: string, service: string) => {
      asked.push(service);
      const a = answer(service);
      if (a instanceof Error) throw a;
      return a;
    },
  } as unknown as ServiceActions;
  return { actions, asked };
}
const heldFor = (reason: string) => ({ held: { reason, detail: '', since: '' } }) as unknown as ServiceStateView;
const reasons = (states: ServiceGaugeState[]) => {
  const out: Record<string, number> = {};
  for (const s of states) if (s.heldReason) out[s.heldReason] = (out[s.heldReason] ?? 0) + 1;
  return out;
};

describe('workflowStateSource on the visibility index', () => {
  it('asks each held workflow why it waits, and nothing else', async () => {
    const { actions, asked } = indexedActions(3, (s) => heldFor(s === 's1.service' ? 'silenced' : 'breaker'));
    const states = (await workflowStateSource(actions, config)()) as ServiceGaugeState[];
    assert.deepEqual(reasons(states), { breaker: 2, silenced: 1 });
    assert.deepEqual(asked.sort(), ['s0.service', 's1.service', 's2.service'], 'only the held ones are queried');
    assert.equal(states.filter((s) => s.phase === 'validating' && s.heldReason).length, 0);
  });

  it(`asks at most ${HELD_REASON_QUERY_LIMIT}; the rest and failed reads count as unknown`, async () => {
    const held = HELD_REASON_QUERY_LIMIT + 20;
    const { actions, asked } = indexedActions(held, (s) =>
      s === 's7.service' ? new Error('query failed') : heldFor('breaker'),
    );
    const states = (await workflowStateSource(actions, config)()) as ServiceGaugeState[];
    assert.equal(asked.length, HELD_REASON_QUERY_LIMIT);
    assert.deepEqual(reasons(states), { breaker: HELD_REASON_QUERY_LIMIT - 1, unknown: 21 });
  });
});
