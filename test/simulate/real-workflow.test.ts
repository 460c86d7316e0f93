// The simulation runs the product's own workflow, not a re-implementation: the same history through
// a bundle built from a copy of src/ whose budget decision is deliberately changed (one restart more
// per hour) gives a different answer.
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { loadConfig } from '../../src/config/config';
import { simulate } from '../../src/simulate/driver';
import { buildReport } from '../../src/simulate/report';
import { historyFromDeliveries } from '../../src/simulate/sources';
import { tempDir } from '../helpers/config';
import { ROOT } from '../helpers/cli';

const FIXTURES = join(__dirname, 'fixtures');
const dir = tempDir('selfheal-patched-');
after(() => rmSync(dir, { recursive: true, force: true }));

describe('simulate runs the real workflow', { timeout: 240_000 }, () => {
  it('a deliberate change to the workflow’s budget decision changes the simulated restarts', async () => {
    cpSync(join(ROOT, 'src'), join(dir, 'src'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const policyFile = join(dir, 'src', 'policy', 'policy.ts');
    const original = readFileSync(policyFile, 'utf8');
    const patched = original.replace(
      'if (inWindow.length < policy.maxRestartsPerHour) return now;',
      'if (inWindow.length < policy.maxRestartsPerHour + 1) return now;',
    );
    assert.notEqual(patched, original, 'the budget check to patch is where this test expects it');
    writeFileSync(policyFile, patched);
    const bundle = await bundleWorkflowCode({
      workflowsPath: join(dir, 'src', 'workflows', 'index.ts'),
      logger: new DefaultLogger('WARN'),
    });

    const config = loadConfig(join(FIXTURES, 'defaults.yaml'));
    const history = historyFromDeliveries(join(FIXTURES, 'flapping.jsonl'));
    const web = async (workflows?: { workflowBundle: typeof bundle }) => {
      const r = buildReport(await simulate({ config, history, workflows }), 'flapping');
      return r.services.find((s) => s.service === 'web.service')!;
    };
    const [real, changed] = [await web(), await web({ workflowBundle: bundle })];
    assert.equal(real.restarts, 3);
    assert.equal(changed.restarts, 4);
    assert.equal(changed.refused.budget, 2);
  });
});
