// tools/selfheal/selfhealing_restart.sh, run for real with a fake `node` (and a fake `systemctl`
// that must never be called) first on PATH.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { waitFor } from '../helpers/wait';
import { explain, repo, run, scratchDir, which } from './helpers';

const SCRIPT = repo('tools/selfheal/selfhealing_restart.sh');

/** A temp dir with fake `node` and `systemctl` that append their argv (one per line) to files. */
function fakes(nodeExit = 0) {
  const dir = scratchDir('selfheal-script-');
  const fake = (name: string, exit: number) => {
    const p = join(dir, name);
    writeFileSync(
      p,
      `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done >> "${join(dir, `${name}.calls`)}"\nexit ${exit}\n`,
    );
    chmodSync(p, 0o755);
  };
  fake('node', nodeExit);
  fake('systemctl', 0);
  const calls = (name: string) => {
    const f = join(dir, `${name}.calls`);
    return existsSync(f) ? readFileSync(f, 'utf8').trimEnd().split('\n') : null;
  };
  const env = {
    PATH: `${dir}:${process.env.PATH}`,
    SELFHEAL_BIN: '/opt/selfheal/bin/selfheal.js',
    SELFHEAL_CONFIG: '/etc/selfheal/test.yaml',
    SELFHEAL_LOCK_FILE: join(dir, 'lock'),
  };
  return { dir, env, calls };
}

describe('selfhealing_restart.sh', () => {
  it('is valid bash (and shellcheck-clean where shellcheck is installed)', (t) => {
    const r = run('bash', ['-n', SCRIPT]);
    assert.equal(r.code, 0, explain(r));
    const shellcheck = which('shellcheck');
    if (!shellcheck) return t.skip('shellcheck is not installed');
    const sc = run(shellcheck, [SCRIPT]);
    assert.equal(sc.code, 0, explain(sc));
  });

  it('prints usage for --help and exits 0 without running anything', () => {
    const f = fakes();
    const r = run(SCRIPT, ['--help'], { env: f.env });
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, /^Usage: selfhealing_restart\.sh/);
    assert.match(r.stdout, /SELFHEAL_CONFIG/);
    assert.equal(f.calls('node'), null);
  });

  it('runs `selfheal poll --config` through node and never systemctl', () => {
    const f = fakes();
    const r = run(SCRIPT, [], { env: f.env });
    assert.equal(r.code, 0, explain(r));
    assert.deepEqual(f.calls('node'), ['/opt/selfheal/bin/selfheal.js', 'poll', '--config', '/etc/selfheal/test.yaml']);
    assert.equal(f.calls('systemctl'), null, 'the script must never restart anything itself');
  });

  it('defaults to the installed paths', () => {
    const f = fakes();
    const env = { PATH: f.env.PATH, SELFHEAL_LOCK_FILE: f.env.SELFHEAL_LOCK_FILE };
    const r = run(SCRIPT, [], { env });
    assert.equal(r.code, 0, explain(r));
    assert.deepEqual(f.calls('node'), [
      '/opt/selfheal/bin/selfheal.js',
      'poll',
      '--config',
      '/etc/selfheal/selfheal.yaml',
    ]);
  });

  it("passes through selfheal poll's non-zero exit code and says so on stderr", () => {
    const f = fakes(3);
    const r = run(SCRIPT, [], { env: f.env });
    assert.equal(r.code, 3, explain(r));
    assert.match(r.stderr, /exit code 3/);
  });

  it('passes extra arguments after -- to selfheal poll, and rejects unknown options', () => {
    const f = fakes();
    const r = run(SCRIPT, ['--', '--verbose'], { env: f.env });
    assert.equal(r.code, 0, explain(r));
    assert.deepEqual(f.calls('node')?.slice(-1), ['--verbose']);
    const bad = run(SCRIPT, ['--frobnicate'], { env: f.env });
    assert.equal(bad.code, 64, explain(bad));
  });

  it('fails (not "another run holds") when flock itself fails, e.g. on an invalid SELFHEAL_LOCK_WAIT', () => {
    // 'abc' and '-1' are refused before flock runs; a wait too long for a timer makes flock itself fail.
    for (const wait of ['abc', '-1', '99999999999999999999']) {
      const f = fakes();
      const r = run(SCRIPT, [], { env: { ...f.env, SELFHEAL_LOCK_WAIT: wait } });
      assert.notEqual(r.code, 0, `SELFHEAL_LOCK_WAIT=${wait} must fail the pass\n${explain(r)}`);
      assert.doesNotMatch(r.stderr, /another run holds/);
      assert.match(r.stderr, /SELFHEAL_LOCK_WAIT/);
      assert.equal(f.calls('node'), null);
    }
  });

  it('waits SELFHEAL_LOCK_WAIT seconds for a held lock, then skips the pass (exit 0)', async () => {
    const f = fakes();
    const holder = spawn('flock', [f.env.SELFHEAL_LOCK_FILE, 'sleep', '30'], { stdio: 'ignore', detached: true });
    try {
      await waitFor(() => run('flock', ['-n', f.env.SELFHEAL_LOCK_FILE, 'true']).code === 1, {
        what: 'the other process to take the lock',
      });
      const started = Date.now();
      const r = run(SCRIPT, [], { env: { ...f.env, SELFHEAL_LOCK_WAIT: '1' } });
      assert.equal(r.code, 0, explain(r));
      assert.ok(Date.now() - started >= 900, 'it waited for the lock');
      assert.match(r.stderr, /another run holds/);
      assert.equal(f.calls('node'), null);
    } finally {
      if (holder.pid) process.kill(-holder.pid, 'SIGTERM');
    }
  });

  it('skips the pass (exit 0) while another run holds the lock', async () => {
    const f = fakes();
    // Hold the same lock from another process, as an overlapping run would.
    // Its own process group, so that stopping it also stops the `sleep` that inherited the lock.
    const holder = spawn('flock', [f.env.SELFHEAL_LOCK_FILE, 'sleep', '30'], { stdio: 'ignore', detached: true });
    try {
      await waitFor(() => run('flock', ['-n', f.env.SELFHEAL_LOCK_FILE, 'true']).code === 1, {
        what: 'the other process to take the lock',
      });
      const r = run(SCRIPT, [], { env: f.env });
      assert.equal(r.code, 0, explain(r));
      assert.match(r.stderr, /another run holds/);
      assert.equal(f.calls('node'), null, 'it must not poll while another run does');
    } finally {
      if (holder.pid) process.kill(-holder.pid, 'SIGTERM');
    }
  });
});
