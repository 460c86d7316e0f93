// The client layer's one way to call Temporal: an unreachable Temporal is ActionError('unavailable')
// (503 / exit 4, the sender retries); Temporal answering "no" passes through as it is.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, ServiceError, WorkflowNotFoundError } from '@temporalio/client';
import { ActionError, callTemporal, isUnavailable } from '../../src/client/call';
import { freePort } from '../helpers/ports';

let connection: Connection;
let client: Client;

before(async () => {
  connection = Connection.lazy({ address: `127.0.0.1:${await freePort()}`, connectTimeout: '1s' });
  client = new Client({ connection });
});

after(async () => {
  await connection.close();
});

const grpcError = (code: number, message: string) => Object.assign(new Error(message), { code });

describe('callTemporal', () => {
  it('turns a Temporal that nothing answers for into ActionError unavailable', async () => {
    const err = await callTemporal(client, 2_000, () =>
      client.workflow.getHandle('selfheal/h/a.service').describe(),
    ).then(
      () => assert.fail('resolved'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ActionError, String(err));
    assert.equal(err.code, 'unavailable');
    assert.match(err.message, /^Temporal is unreachable: /);
    assert.ok(isUnavailable(err));
  });

  it('reads gRPC UNAVAILABLE and DEADLINE_EXCEEDED, directly or inside a ServiceError, as unreachable', async () => {
    const unreachable = [
      grpcError(14, '14 UNAVAILABLE: No connection established'),
      grpcError(4, '4 DEADLINE_EXCEEDED: Deadline exceeded'),
      new ServiceError('Failed to start workflow', { cause: grpcError(14, 'unavailable') }),
      new Error('connect ECONNREFUSED 127.0.0.1:7233'),
    ];
    for (const raw of unreachable) {
      const err = await callTemporal(client, null, () => Promise.reject(raw)).catch((e: unknown) => e);
      assert.ok(isUnavailable(err), `${raw.message} -> ${String(err)}`);
      assert.equal((err as ActionError).cause, raw);
    }
  });

  it('passes Temporal answering "no" through unchanged', async () => {
    const answered = [
      new WorkflowNotFoundError('workflow not found', 'selfheal/h/a.service', undefined),
      grpcError(9, '9 FAILED_PRECONDITION: namespace is not active'),
      new ServiceError('Failed to signal', { cause: grpcError(8, 'RESOURCE_EXHAUSTED') }),
      new ActionError('conflict', 'nothing to approve'),
    ];
    for (const raw of answered) {
      const err = await callTemporal(client, null, () => Promise.reject(raw)).catch((e: unknown) => e);
      assert.equal(err, raw);
      assert.equal(isUnavailable(err), false, raw.message);
    }
  });

  it('returns what the call returns', async () => {
    assert.equal(await callTemporal(client, 1_000, async () => 42), 42);
  });
});
