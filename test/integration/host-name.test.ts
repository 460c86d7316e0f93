// One host-naming rule everywhere: on a machine whose hostname has dots, the shipped worker unit
// must serve the same host as `selfheal worker` (and `selfheal privileges`) would without --host.
// Both run in a UTS namespace named homelab.example.org: systemd expands the unit's specifiers
// itself (a private user manager loads the shipped unit file unchanged), and the real CLI resolves
// its default host.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, ROOT } from '../helpers/cli';
import { tempDir } from '../helpers/config';
import { UserSystemd } from '../helpers/systemd';

const HOSTNAME = 'homelab.example.org';
let systemd: UserSystemd;

before(async () => {
  systemd = await UserSystemd.start({ hostname: HOSTNAME });
});

after(async () => {
  await systemd?.stop();
});

/** The host `selfheal` picks by default (no --host, no SELFHEAL_HOST) on a machine called HOSTNAME. */
function cliDefaultHost(): string {
  const config = join(tempDir('selfheal-hostname-'), 'selfheal.yaml');
  writeFileSync(config, 'services:\n  - { name: jira-worker.service, host: homelab }\n');
  const env: NodeJS.ProcessEnv = { ...process.env, SELFHEAL_FROM_SOURCE: '1' };
  delete env.SELFHEAL_HOST;
  const r = spawnSync(
    'unshare',
    [
      '--uts',
      'sh',
      '-c',
      'hostname "$1" && shift && exec "$@"',
      'sh',
      HOSTNAME,
      process.execPath,
      BIN,
      'privileges',
      '--format',
      'sudoers',
      '--config',
      config,
    ],
    { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  const m = /--host (\S+)`/.exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[1];
}

describe('host naming', () => {
  it('the worker unit serves the host `selfheal worker` picks by default on a dotted hostname', async () => {
    copyFileSync(
      join(ROOT, 'deploy/systemd/selfheal-worker.service'),
      join(systemd.unitDir, 'selfheal-worker.service'),
    );
    await systemd.systemctl('daemon-reload');
    const out = await systemd.systemctl('show', '--property=Environment', '--', 'selfheal-worker.service');
    const unitHost = /(?:^|\s)SELFHEAL_HOST=(\S+)/.exec(out)?.[1];
    assert.ok(unitHost, `SELFHEAL_HOST is not set by the unit: ${out}`);
    const cliHost = cliDefaultHost();
    assert.equal(cliHost, 'homelab', 'the CLI default is the short host name');
    assert.equal(unitHost, cliHost, 'the unit and the CLI must name this host the same way');
  });
});
