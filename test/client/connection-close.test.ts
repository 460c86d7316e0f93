// A Temporal connection closed while one of its calls waits to retry (Temporal down, the process
// shutting down): the call fails as unreachable. The SDK's default retry interceptor retries from a
// timer that Connection.close() does not clear, and the retry throws "Channel has been shut down"
// from that timer: an uncaught exception (it failed a CI run in alertmanager-redelivery's teardown)
// and a call that never settles.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { ActionError, callTemporal, isUnavailable } from '../../src/client/call';
import { clientConnectionOptions } from '../../src/temporal/connection';
import { DevServer } from '../../src/temporal/dev-server';
import { tempDir, testConfig } from '../helpers/config';
import { freePort } from '../helpers/ports';

/** Runs `fn`, collecting what reaches uncaughtException meanwhile (node:test fails the file on it as well). */
async function collectingUncaught<T>(fn: () => Promise<T>): Promise<{ result: T; uncaught: unknown[] }> {
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    return { result: await fn(), uncaught };
  } finally {
    process.off('uncaughtException', onUncaught);
  }
}

const configFor = (port: number) =>
  testConfig(`temporal: { address: "127.0.0.1:${port}" }\nservices: [ { name: a.service, host: h } ]\n`);

describe('retrying calls to Temporal (the client connection selfheal makes)', () => {
  it('a connection closed while a call waits to retry fails the call as unreachable; nothing is thrown from a retry timer', async () => {
    const port = await freePort(); // nothing listens: every attempt is UNAVAILABLE, and retried
    const config = configFor(port);
    const { result, uncaught } = await collectingUncaught(async () => {
      const connection = Connection.lazy(clientConnectionOptions(config));
      const call = connection.workflowService.getSystemInfo({}).then(
        () => 'answered',
        (err: unknown) => err,
      );
      await sleep(300); // a few attempts refused; the next one waits on its timer
      await connection.close();
      // The default policy's longest wait between attempts is 6 s (5 s, 20 % jitter).
      return Promise.race([call, sleep(8_000).then(() => 'never settled')]);
    });
    assert.deepEqual(uncaught.map(String), []);
    assert.ok(result instanceof Error, `the call ended with ${String(result)}`);
    assert.match(result.message, /UNAVAILABLE|closed|shut down/i);
  });

  it('a call whose deadline comes before its next retry ends then, as DEADLINE_EXCEEDED with the last error (unreachable: 503 / exit 4)', async () => {
    const connection = Connection.lazy(clientConnectionOptions(configFor(await freePort())));
    const client = new Client({ connection });
    try {
      const err = await callTemporal(client, 1_000, () => connection.workflowService.getSystemInfo({})).then(
        () => assert.fail('answered'),
        (e: unknown) => e,
      );
      assert.ok(isUnavailable(err), String(err));
      const grpc = (err as ActionError).cause as { code?: number; details?: string };
      assert.equal(grpc.code, 4, `gRPC code of ${String(grpc.details)}`);
      assert.match(grpc.details ?? '', /ECONNREFUSED/, 'the cause of the last attempt is kept');
    } finally {
      await connection.close();
    }
  });

  it('a call made while Temporal is down is answered once it is up (the retries still deliver the answer)', async () => {
    const port = await freePort();
    const connection = Connection.lazy(clientConnectionOptions(configFor(port)));
    let server: DevServer | null = null;
    try {
      const call = connection.workflowService.getSystemInfo({});
      await sleep(300);
      server = await DevServer.start({ dataDir: tempDir(), port, uiPort: 0, headless: true, namespace: 'default' });
      const info = await call;
      assert.equal(typeof info.serverVersion, 'string', JSON.stringify(info));
      assert.ok(info.capabilities, 'the answer of the attempt that succeeded');
    } finally {
      await connection.close();
      await server?.stop();
    }
  });
});
