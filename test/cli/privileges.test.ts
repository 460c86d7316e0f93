// `selfheal privileges --format polkit` output goes straight into /etc/polkit-1/rules.d (README's
// install lines), where polkitd parses every file as JavaScript: it must stay JavaScript even when the
// host has nothing to grant (a host name that is not in the config, or only systemd-user units).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runInNewContext } from 'node:vm';
import { privilegesSnippet } from '../../src/cli/privileges';
import { parseConfig } from '../../src/config/config';

const config = parseConfig(
  'services:\n  - { name: a.service, host: homelab }\n  - { name: b.service, host: other, manager: systemd-user }\n',
  {
    env: {},
    cwd: '/srv',
  },
);

describe('selfheal privileges', () => {
  it('writes a polkit rules file that parses as JavaScript, also when there is nothing to grant', () => {
    for (const host of ['homelab', 'other', 'nowhere']) {
      const text = privilegesSnippet(config, host, { format: 'polkit', user: 'selfheal' });
      const rules: unknown[] = [];
      assert.doesNotThrow(
        () => runInNewContext(text, { polkit: { Result: {}, addRule: (f: unknown) => rules.push(f) } }),
        `${host}:\n${text}`,
      );
      assert.equal(rules.length, host === 'homelab' ? 1 : 0, host);
    }
  });

  it('writes a sudoers snippet whose lines without a grant are comments', () => {
    const text = privilegesSnippet(config, 'nowhere', { format: 'sudoers', user: 'selfheal' });
    for (const line of text.split('\n').filter(Boolean)) assert.match(line, /^#/);
  });
});
