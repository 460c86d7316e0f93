// The CLI's human-readable output, on hand-made states.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stateDetails } from '../../src/cli/output';
import type { ServiceStateView } from '../../src/workflows/definitions';

const state: ServiceStateView = {
  workflowId: 'selfheal/web1/a.service',
  host: 'web1',
  service: 'a.service',
  phase: 'idle',
  status: 'OK',
  paused: false,
  pausedUntil: null,
  pauseReason: null,
  firingAlerts: [],
  firing: [],
  incident: null,
  consecutiveFailures: 0,
  restartsLastHour: 0,
  restartTimes: [],
  cooldownUntil: null,
  budgetFreesAt: null,
  canApprove: false,
  canSkip: false,
  lastEscalation: null,
  recentAttempts: [],
  totals: { incidents: 0, restarts: 0, failures: 0, escalations: 0 },
  policy: null,
  run: 1,
  historyLength: 10,
};

describe('selfheal status output', () => {
  it('links the workflow in the Temporal UI under the configured namespace', () => {
    const text = stateDetails(state, 'web1', 'a.service', 'http://temporal-ui:8080', 'prod-selfheal');
    assert.match(text, /http:\/\/temporal-ui:8080\/namespaces\/prod-selfheal\/workflows\/selfheal%2Fweb1%2Fa\.service/);
    assert.doesNotMatch(text, /namespaces\/default/);
  });
});
