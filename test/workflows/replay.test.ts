// Replays histories of real runs (recorded by test/histories/record.ts) against the current
// workflow code: a change that would break workflows already running fails here.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { DefaultLogger, Worker } from '@temporalio/worker';
import { workflowBundle } from '../helpers/temporal';

const dir = join(__dirname, '..', 'histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json'));

describe('replay of recorded histories', () => {
  it('has histories to replay', () => {
    assert.ok(files.length >= 2, `histories in ${dir}: ${files.join(', ')}`);
  });

  for (const file of files) {
    it(`replays ${file} deterministically`, async () => {
      const json = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { events: { eventType: string }[] };
      const types = new Set(json.events.map((e) => e.eventType));
      assert.ok(types.has('EVENT_TYPE_WORKFLOW_TASK_COMPLETED'), 'the workflow took decisions');
      if (/incident-/.test(file)) {
        // The full-incident recordings: a real incident, not a stub.
        assert.ok(json.events.length > 20, 'a full incident, not a stub');
        assert.ok(types.has('EVENT_TYPE_ACTIVITY_TASK_COMPLETED'), 'host activities ran');
        assert.ok(types.has('EVENT_TYPE_TIMER_FIRED'), 'the validation window elapsed');
      }
      const history = historyFromJSON(json);
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history);
    });
  }

  it('detects a non-deterministic change', async () => {
    // The same history against a deliberately different workflow must fail: the check can fail.
    const history = historyFromJSON(JSON.parse(readFileSync(join(dir, 'incident-restart.json'), 'utf8')));
    const { bundleWorkflowCode } = await import('@temporalio/worker');
    const broken = await bundleWorkflowCode({
      workflowsPath: join(__dirname, 'fixtures', 'changed-workflow.ts'),
      logger: new DefaultLogger('ERROR'),
    });
    await assert.rejects(
      Worker.runReplayHistory({ workflowBundle: broken }, history),
      /Nondeterminism|DeterminismViolation|does not match|nondeterminism/i,
    );
  });
});
