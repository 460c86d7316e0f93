// Human actions are validated before Temporal is asked anything: here Temporal is not even reachable,
// so a 400 proves the refusal happened first, and a 5xx would be the bug.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { clientConnectionOptions } from '../../src/temporal/connection';
import { buildApp } from '../../src/api/app';
import { createMetrics } from '../../src/metrics/metrics';
import { MAX_PAUSE_MS, ServiceActions } from '../../src/client/actions';
import { ActionError } from '../../src/client/call';
import { testConfig } from '../helpers/config';
import { freePort } from '../helpers/ports';

const ADMIN = 'admin-token-0123456789abc';
let app: FastifyInstance;
let connection: Connection;
let actions: ServiceActions;

before(async () => {
  const port = await freePort(); // nothing listens there
  const config = testConfig(`
temporal: { address: "127.0.0.1:${port}" }
api: { token: webhook-token-0123456789, adminToken: ${ADMIN}, temporalTimeout: 1s }
services: [ { name: a.service, host: h } ]
`);
  connection = Connection.lazy(clientConnectionOptions(config)); // as selfheal start connects
  const client = new Client({ connection });
  actions = new ServiceActions(client, config, 1_000);
  app = await buildApp({ config, client, metrics: createMetrics(), actions });
});

after(async () => {
  await app?.close();
  await connection?.close();
});

const pause = (body: object) =>
  app.inject({
    method: 'POST',
    url: '/services/h/a.service/pause',
    headers: { authorization: `Bearer ${ADMIN}` },
    payload: body,
  });

describe('pause duration', () => {
  it('a pause longer than the longest allowed answers 400 naming the limit, not 500', async () => {
    for (const forText of ['999999999d', '366d', '9'.repeat(31) + 'd']) {
      const res = await pause({ for: forText });
      assert.equal(res.statusCode, 400, `${forText}: ${res.body}`);
      assert.match(
        res.json().message,
        /longer than the longest pause \(365d\); leave out "for" to pause until resumed/,
      );
    }
  });

  it('ServiceActions.pause refuses a duration past the limit before any Temporal call', async () => {
    for (const forMs of [MAX_PAUSE_MS + 1, 8.64e16, Infinity]) {
      await assert.rejects(
        actions.pause(actions.resolve('a.service'), { by: 't', forMs }),
        (err: unknown) => err instanceof ActionError && err.code === 'invalid',
      );
    }
  });
});
