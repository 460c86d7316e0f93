// The reason codes /readyz gives anonymous callers: a small stable set, whatever the client's error says.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { READINESS_REASONS, readinessReason } from '../../src/api/routes/health';

describe('readinessReason', () => {
  it('maps gRPC status codes and connection errors to stable codes', () => {
    assert.equal(readinessReason({ code: 4, message: '4 DEADLINE_EXCEEDED: Deadline exceeded' }), 'timeout');
    assert.equal(readinessReason({ code: 14, message: '14 UNAVAILABLE: No connection established' }), 'unavailable');
    assert.equal(readinessReason({ code: 16, message: '16 UNAUTHENTICATED: bad api key sk-123' }), 'unauthenticated');
    assert.equal(readinessReason({ code: 7, message: '7 PERMISSION_DENIED' }), 'permission-denied');
    assert.equal(readinessReason(new Error('connect ECONNREFUSED 10.0.0.5:7233')), 'unavailable');
    assert.equal(readinessReason(new Error('unable to verify the first certificate')), 'tls');
    assert.equal(readinessReason(new Error('something else entirely')), 'error');
    assert.equal(readinessReason(null), 'error');
    assert.equal(readinessReason('a string'), 'error');
  });

  it('never returns anything outside the documented set', () => {
    for (const err of [{ code: 2 }, { code: 13, message: 'INTERNAL: at 10.0.0.5' }, undefined, 42, {}]) {
      assert.ok(READINESS_REASONS.includes(readinessReason(err)));
    }
  });
});
