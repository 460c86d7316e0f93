// A host worker under a burst, on a real dev server: verifications wait out their stable period
// without keeping a restart waiting, and the service manager never runs more than 8 commands at once
// however many activities are under way (the real one forks a systemctl per command).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import type { ServiceManager, UnitStatus } from '../../src/activities/service-manager';
import { createHostWorker } from '../../src/worker/workers';
import { testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import { devServerEnv } from '../helpers/temporal';
import type { hostBurst } from './fixtures/host-burst';

/** The in-memory manager, each command taking a while, counting how many run at once. */
class SlowManager implements ServiceManager {
  readonly kind = 'slow';
  readonly fake = new FakeManager();
  running = 0;
  most = 0;

  private async timed<T>(fn: () => Promise<T>): Promise<T> {
    this.most = Math.max(this.most, ++this.running);
    try {
      await new Promise((r) => setTimeout(r, 100));
      return await fn();
    } finally {
      this.running--;
    }
  }

  status(unit: string): Promise<UnitStatus> {
    return this.timed(() => this.fake.status(unit));
  }

  restart(unit: string): Promise<void> {
    return this.timed(() => this.fake.restart(unit));
  }
}

const VERIFIES = Array.from({ length: 12 }, (_, i) => `v${i}.service`);
const config = testConfig(
  ['services:', ...[...VERIFIES, 'r.service'].map((s) => `  - { name: ${s}, host: h1 }`)].join('\n') + '\n',
);

let env: TestWorkflowEnvironment;
before(async () => {
  env = await devServerEnv();
});
after(async () => {
  await env?.teardown();
});

describe('host worker: a burst of activities on one host', () => {
  it('runs a restart while a dozen verifications wait out their stable period, with at most 8 commands at once', async () => {
    const manager = new SlowManager();
    const hostWorker = await createHostWorker({
      config,
      connection: env.nativeConnection,
      host: 'h1',
      managers: () => manager,
      pollIntervalMs: 20,
    });
    const burstWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'host-burst',
      workflowBundle: await bundleWorkflowCode({
        workflowsPath: require.resolve('./fixtures/host-burst'),
        logger: new DefaultLogger('WARN'),
      }),
    });
    const done = await hostWorker.runUntil(
      burstWorker.runUntil(
        env.client.workflow.execute<typeof hostBurst>('hostBurst', {
          taskQueue: 'host-burst',
          workflowId: 'host-burst',
          args: [{ host: 'h1', verify: VERIFIES, restart: 'r.service', stableMs: 8_000 }],
        }),
      ),
    );
    assert.equal(done.length, VERIFIES.length + 1, done.join(', '));
    assert.equal(done[0], 'restart r.service restarted', `the restart waited behind verifications: ${done.join(', ')}`);
    for (const s of VERIFIES) assert.ok(done.includes(`verify ${s} verified`), `${s}: ${done.join(', ')}`);
    assert.equal(manager.fake.restartsOf('r.service'), 1);
    assert.ok(manager.most > 1, `commands ran one at a time (${manager.most}): the bound was not tested`);
    assert.ok(manager.most <= 8, `${manager.most} service-manager commands ran at once`);
  });
});
