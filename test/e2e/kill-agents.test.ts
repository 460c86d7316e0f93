// The e2e harness kills left-over agents by the pids they recorded, but only a pid that is still
// one of its agents: a pid reused by an unrelated process is left alone.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { tempDir } from '../helpers/config';
import { AGENT, isAgentOf } from './harness';

const stateDir = tempDir();
const children: ReturnType<typeof spawn>[] = [];
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** A process that looks like the agent to /proc (its argv names the agent script) but only sleeps. */
function lookalike(argv: string[], env: NodeJS.ProcessEnv): number {
  const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', ...argv], { env, stdio: 'ignore' });
  children.push(c);
  return c.pid!;
}

describe('e2e harness: which recorded pids it may kill', () => {
  it('only an agent of this harness: its script and its state folder', async () => {
    const agent = lookalike([AGENT], { AGENT_STATE_DIR: stateDir });
    const otherHarness = lookalike([AGENT], { AGENT_STATE_DIR: `${stateDir}-other` });
    const unrelated = lookalike([], { AGENT_STATE_DIR: stateDir });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(isAgentOf(agent, stateDir), true);
    assert.equal(isAgentOf(otherHarness, stateDir), false, 'an agent of another harness');
    assert.equal(isAgentOf(unrelated, stateDir), false, 'a reused pid: not the agent script');
    assert.equal(isAgentOf(process.pid, stateDir), false, 'the test runner');
    assert.equal(isAgentOf(2 ** 22 + 1, stateDir), false, 'no such process');
  });
});
