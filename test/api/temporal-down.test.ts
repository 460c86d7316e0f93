// With Temporal unreachable the API must answer 503 (retryable), never crash, never claim success.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { clientConnectionOptions } from '../../src/temporal/connection';
import { buildApp } from '../../src/api/app';
import { checkApiSecurity } from '../../src/api/server';
import { createMetrics } from '../../src/metrics/metrics';
import { testConfig } from '../helpers/config';
import { freePort } from '../helpers/ports';

const TOKEN = 'webhook-token-0123456789';
const ADMIN = 'admin-token-0123456789abc';
let app: FastifyInstance;
let connection: Connection;
let temporalPort: number;
const logLines: string[] = [];

before(async () => {
  const port = await freePort(); // nothing listens there
  temporalPort = port;
  const config = testConfig(`
temporal: { address: "127.0.0.1:${port}" }
api: { token: ${TOKEN}, adminToken: ${ADMIN}, temporalTimeout: 1s }
services: [ { name: a.service, host: h } ]
`);
  connection = Connection.lazy(clientConnectionOptions(config)); // as selfheal start connects
  const metrics = createMetrics();
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  });
  app = await buildApp(
    { config, client: new Client({ connection }), metrics },
    { logger: { level: 'warn', stream: logStream } },
  );
});

after(async () => {
  await app?.close();
  await connection?.close();
});

const firing = {
  version: '4',
  status: 'firing',
  alerts: [{ status: 'firing', labels: { alertname: 'ServiceStalled', service: 'a.service', host: 'h' } }],
};

describe('API while Temporal is unreachable', () => {
  it('the webhook answers 503 with a retryable error, quickly', async () => {
    const started = Date.now();
    const res = await app.inject({
      method: 'POST',
      url: '/selfheal/trigger',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: firing,
    });
    assert.equal(res.statusCode, 503, res.body);
    assert.equal(res.json().retryable, true);
    assert.match(res.json().message, /retry later/);
    assert.equal(res.headers['retry-after'], '10');
    assert.ok(Date.now() - started < 15_000, 'bounded by api.temporalTimeout, not hanging');
  });

  it('an alert list without anything to signal still answers 200 (nothing needed Temporal)', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/selfheal/trigger',
      headers: { authorization: `Bearer ${TOKEN}` },
      payload: {
        ...firing,
        alerts: [{ status: 'firing', labels: { alertname: 'X', service: 'other.service', host: 'h' } }],
      },
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().ignored.length, 1);
  });

  it('readiness, state and human actions answer 503; health stays 200', async () => {
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    assert.equal(ready.json().temporal, 'unreachable');
    const auth = { authorization: `Bearer ${ADMIN}` };
    assert.equal((await app.inject({ method: 'GET', url: '/services', headers: auth })).statusCode, 503);
    assert.equal((await app.inject({ method: 'GET', url: '/services/h/a.service', headers: auth })).statusCode, 503);
    const approve = await app.inject({
      method: 'POST',
      url: '/services/h/a.service/approve',
      headers: auth,
      payload: {},
    });
    assert.equal(approve.statusCode, 503);
    assert.equal(approve.json().retryable, true);
  });

  it('/readyz (unauthenticated) says only "Temporal unreachable" and a reason code; the detail goes to the log', async () => {
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    const { reason, ...rest } = ready.json();
    assert.deepEqual(rest, { status: 'not-ready', temporal: 'unreachable', message: 'Temporal unreachable' });
    // Nothing listens on the port: the client reports a deadline or a refused connection.
    assert.ok(['timeout', 'unavailable'].includes(reason), reason);
    // Nothing of the client's own error text (addresses, gRPC details) reaches an anonymous caller.
    assert.doesNotMatch(ready.body, /DEADLINE|UNAVAILABLE|127\.0\.0\.1|metadata/);
    const logged = logLines.join('');
    assert.match(logged, /readiness: Temporal unreachable/);
    // The deadline, with the refused connection of the last attempt when no retry fitted before it
    // (src/temporal/grpc-retry.ts), or grpc-js's own deadline text when an attempt was under way.
    assert.match(logged, /ECONNREFUSED|DEADLINE_EXCEEDED/, 'the operator still sees the detail, in the server log');
    assert.match(logged, new RegExp(`127\\.0\\.0\\.1:${temporalPort}`), 'and which address was dialled');
  });

  it('/metrics still answers, with selfhealing_temporal_up 0', async () => {
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /selfhealing_temporal_up 0/);
    assert.match(res.body, /selfhealing_webhook_requests_total\{code="503"\} 1/);
  });
});

describe('API security', () => {
  it('refuses to start without tokens unless insecure on loopback', () => {
    const base = 'services: [ { name: a.service, host: h } ]\n';
    assert.throws(() => checkApiSecurity(testConfig(base)), /api\.token and api\.adminToken are not set/);
    assert.throws(
      () => checkApiSecurity(testConfig(`api: { token: ${TOKEN} }\n${base}`)),
      /api\.adminToken is not set/,
    );
    assert.doesNotThrow(() => checkApiSecurity(testConfig(`api: { token: ${TOKEN}, adminToken: ${ADMIN} }\n${base}`)));
    assert.doesNotThrow(() => checkApiSecurity(testConfig(`api: { insecure: true }\n${base}`)));
    assert.throws(() => testConfig(`api: { listen: "0.0.0.0:5000", insecure: true }\n${base}`), /api\.insecure/);
  });
});
