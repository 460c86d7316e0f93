// A unit written without its type suffix (`jira-worker`) is the unit systemd calls
// `jira-worker.service`: systemctl adds the suffix before asking systemd, so polkit and sudo see the
// full name. The config normalises it once, and every consumer (the restart argv, the polkit rule,
// the sudoers snippet) gets the name systemd and polkit use.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runInNewContext } from 'node:vm';
import { privilegesSnippet } from '../../src/cli/privileges';
import { parseConfig } from '../../src/config/config';
import { normalizeUnitName } from '../../src/config/names';
import { runCli } from '../helpers/cli';
import { tempDir } from '../helpers/config';

const YAML = `services:
  - { name: jira-worker, host: homelab }
  - { name: crypto-agent@BTC_USDT, host: homelab }
  - { name: btc, unit: crypto-agent@ETH_USDT, host: homelab }
  - { name: backup.timer, host: homelab }
  - { name: already.service, host: homelab }
`;

/** Evaluates a polkit rules file as polkitd would call it, for one subject and action. */
function polkitAllows(rules: string, user: string, verb: string, unit: string): boolean {
  let rule: ((action: unknown, subject: unknown) => unknown) | undefined;
  const polkit = {
    Result: { YES: 'yes', NO: 'no', NOT_HANDLED: 'not_handled' },
    addRule: (fn: typeof rule) => (rule = fn),
  };
  runInNewContext(rules, { polkit });
  assert.ok(rule, 'the rules file must call polkit.addRule');
  const action = { id: 'org.freedesktop.systemd1.manage-units', lookup: (k: string) => ({ verb, unit })[k] };
  return rule(action, { user }) === 'yes';
}

describe('unit names without a type suffix', () => {
  it('become NAME.service, as systemctl makes them; names with a unit type suffix stay as written', () => {
    assert.equal(normalizeUnitName('jira-worker'), 'jira-worker.service');
    assert.equal(normalizeUnitName('crypto-agent@BTC_USDT'), 'crypto-agent@BTC_USDT.service');
    assert.equal(normalizeUnitName('jira-worker.service'), 'jira-worker.service');
    assert.equal(normalizeUnitName('backup.timer'), 'backup.timer');
    assert.equal(normalizeUnitName('app.v2'), 'app.v2.service', 'a dot alone is not a unit type');
  });

  it('are normalised in the config: the unit every consumer uses; the alert name stays as written', () => {
    const c = parseConfig(YAML, { env: {}, cwd: '/srv' });
    assert.deepEqual(
      c.services.map((s) => [s.name, s.unit]),
      [
        ['jira-worker', 'jira-worker.service'],
        ['crypto-agent@BTC_USDT', 'crypto-agent@BTC_USDT.service'],
        ['btc', 'crypto-agent@ETH_USDT.service'],
        ['backup.timer', 'backup.timer'],
        ['already.service', 'already.service'],
      ],
    );
  });

  it('`selfheal privileges --format polkit` lets the worker restart the unit polkit is asked about', async () => {
    const file = join(tempDir('selfheal-units-'), 'selfheal.yaml');
    writeFileSync(file, YAML);
    const r = await runCli(['privileges', '--config', file, '--host', 'homelab', '--format', 'polkit']);
    assert.equal(r.code, 0, r.stderr);
    for (const unit of ['jira-worker.service', 'crypto-agent@BTC_USDT.service', 'crypto-agent@ETH_USDT.service']) {
      assert.ok(polkitAllows(r.stdout, 'selfheal', 'restart', unit), `${unit} is allowed:\n${r.stdout}`);
    }
    assert.ok(!polkitAllows(r.stdout, 'selfheal', 'restart', 'sshd.service'));
    assert.ok(!polkitAllows(r.stdout, 'selfheal', 'stop', 'jira-worker.service'));
  });

  it('the sudoers snippet allows exactly the argv the worker runs', () => {
    const c = parseConfig(YAML, { env: {}, cwd: '/srv' });
    const sudoers = privilegesSnippet(c, 'homelab', { format: 'sudoers', user: 'selfheal' });
    assert.match(sudoers, /\/usr\/bin\/systemctl --no-ask-password restart -- jira-worker\.service(,|\n)/);
    assert.doesNotMatch(sudoers, /restart -- jira-worker(,|\n|$)/m);
  });
});
