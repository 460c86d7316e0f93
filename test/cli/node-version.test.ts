// bin/selfheal.js on a Node.js older than package.json's engines (Debian 12's own nodejs is 18, and
// the units run the first `node` on the PATH): it stops at once and says what to install, instead of
// failing somewhere inside with a message about something else. The old version is simulated by a
// preload that rewrites process.versions; the checks run in the real entry point.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BIN, ROOT } from '../helpers/cli';
import { tempDir } from '../helpers/config';

function runAs(version: string) {
  const preload = join(tempDir('selfheal-node-'), 'version.cjs');
  writeFileSync(
    preload,
    `Object.defineProperty(process, 'versions', { value: { ...process.versions, node: ${JSON.stringify(version)} } });\n` +
      `Object.defineProperty(process, 'version', { value: 'v' + ${JSON.stringify(version)} });\n`,
  );
  return spawnSync(process.execPath, ['--require', preload, BIN, '--help'], {
    cwd: ROOT,
    env: { ...process.env, SELFHEAL_FROM_SOURCE: '1' },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('the selfheal entry point on an old Node.js', () => {
  it('refuses Node.js 18 and 20.2 with what to install', () => {
    for (const v of ['18.19.0', '20.2.0']) {
      const r = runAs(v);
      assert.equal(r.status, 1, `${v}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, new RegExp(`needs Node\\.js 20\\.3 or later; this is v${v.replace(/\./g, '\\.')}`));
      assert.match(r.stderr, /NodeSource/);
      assert.equal(r.stdout, '');
    }
  });

  it('runs on the versions package.json allows', () => {
    const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } })
      .engines;
    assert.equal(engines.node, '>=20.3.0', 'keep this check and package.json engines in step');
    const r = runAs('20.3.0');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: selfheal/);
  });
});
