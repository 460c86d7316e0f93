// The command line itself: help, config checking, privileges, and errors (exit codes and messages).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { privilegesSnippet } from '../../src/cli/privileges';
import { runCli } from '../helpers/cli';
import { tempDir, testConfig } from '../helpers/config';
import { freePort } from '../helpers/ports';

const dir = tempDir();

describe('selfheal CLI', () => {
  it('--help lists every command of the contract', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const cmd of [
      'start',
      'worker',
      'api',
      'dev-server',
      'status',
      'approve',
      'skip',
      'pause',
      'resume',
      'check-config',
      'poll',
    ]) {
      assert.match(r.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), cmd);
    }
    assert.match(r.stdout, /Exit codes/);
    const pause = await runCli(['pause', '--help']);
    assert.match(pause.stdout, /--for <duration>/);
  });

  it('check-config accepts the shipped example and explains every error of a broken file', async () => {
    const ok = await runCli(['check-config', 'examples/selfheal.yaml']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /OK — 7 service\(s\) on 1 host\(s\) \(homelab\)/);
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'polcy: {}\nservices:\n  - { name: "x;y", host: h, policy: { cooldown: soon } }\n');
    const bad = await runCli(['check-config', broken]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /3 problems/);
    assert.match(bad.stderr, /line 1: polcy: unknown key \(did you mean "policy"\?\)/);
    assert.match(bad.stderr, /line 3: services\[0\]\.name: "x;y" contains characters not allowed/);
    assert.match(bad.stderr, /line 3: services\[0\]\.policy\.cooldown: "soon" is not a duration/);
    const missing = await runCli(['check-config', join(dir, 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /file not found/);
  });

  it('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.stdout.trim(), pkg.version);
  });

  it('usage errors exit 2 with a hint', async () => {
    const r = await runCli(['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command/);
    const dur = await runCli(['pause', 'x.service', '--for', 'a while', '--config', 'examples/selfheal.yaml']);
    assert.equal(dur.code, 2);
    assert.match(dur.stderr, /"a while" is not a duration/);
  });

  it('pause --for longer than a date can hold is a usage error (exit 2), refused before connecting', async () => {
    const port = await freePort(); // nothing listens: a refusal after connecting would be exit 4
    const cfg = join(dir, 'pause.yaml');
    writeFileSync(cfg, `temporal: { address: "127.0.0.1:${port}" }\nservices: [ { name: a.service, host: h } ]\n`);
    for (const forText of ['999999999d', '366d', '9'.repeat(400) + 'd']) {
      const r = await runCli(['pause', 'a.service', '--for', forText, '--config', cfg]);
      assert.equal(r.code, 2, `${forText}: ${r.stderr}`);
      assert.match(r.stderr, /longer than the longest pause \(365d\); leave out --for to pause until resumed/);
      assert.doesNotMatch(r.stderr, /RangeError|Invalid time value/);
    }
  });

  it('the long-running commands load their runtime when run from sources (no dist/)', async () => {
    // `selfheal api` without tokens reaches the API's own refusal only after loading src/runtime.ts.
    const port = await freePort();
    const cfg = join(dir, 'from-source.yaml');
    writeFileSync(cfg, `api: { listen: "127.0.0.1:${port}" }\nservices: [ { name: a.service, host: h } ]\n`);
    const r = await runCli(['api', '--config', cfg], { env: { SELFHEAL_FROM_SOURCE: '1' } });
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stderr, /Cannot find module/);
    assert.match(r.stderr, /api\.token and api\.adminToken are not set/);
  });

  it('says clearly when Temporal is unreachable (exit 4)', async () => {
    const port = await freePort();
    const cfg = join(dir, 'down.yaml');
    writeFileSync(cfg, `temporal: { address: "127.0.0.1:${port}" }\nservices: [ { name: a.service, host: h } ]\n`);
    const r = await runCli(['status', '--config', cfg]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot reach Temporal at 127\\.0\\.0\\.1:${port}`));
    const unknown = await runCli(['approve', 'nope.service', '--config', cfg]);
    assert.equal(unknown.code, 2, 'an unknown service is refused before connecting');
    assert.match(unknown.stderr, /nope\.service is not a configured service/);
  });

  it('privileges: a polkit rule and a sudoers snippet for exactly the configured system units of a host', async () => {
    const config = testConfig(`services:
  - { name: jira-worker.service, host: homelab }
  - { name: crypto-agent@BTC_USDT.service, host: homelab }
  - { name: mine.service, host: homelab, manager: systemd-user }
  - { name: other.service, host: elsewhere }
`);
    const polkit = privilegesSnippet(config, 'homelab', { format: 'polkit', user: 'selfheal' });
    assert.match(polkit, /\["crypto-agent@BTC_USDT\.service","jira-worker\.service"\]/);
    assert.match(polkit, /action\.lookup\("verb"\) === "restart"/);
    assert.doesNotMatch(polkit, /other\.service|mine\.service/);
    const sudoers = privilegesSnippet(config, 'homelab', { format: 'sudoers', user: 'selfheal' });
    assert.match(sudoers, /\/usr\/bin\/systemctl --no-ask-password restart -- jira-worker\.service/);
    assert.match(sudoers, /selfheal ALL=\(root\) NOPASSWD: SELFHEAL_RESTARTS/);
    assert.doesNotMatch(sudoers, /other\.service/);
    assert.throws(() => privilegesSnippet(config, 'homelab', { format: 'sudoers', user: 'x; rm' }), /invalid user/);
    const cli = await runCli([
      'privileges',
      '--config',
      'examples/selfheal.yaml',
      '--host',
      'homelab',
      '--format',
      'sudoers',
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal((cli.stdout.match(/restart -- /g) ?? []).length, 7);
  });
});
