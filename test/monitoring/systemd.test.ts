// deploy/systemd/*: the units parse, carry the install layout, keep the worker able to restart
// units (polkit rule evaluated for real), and pass `systemd-analyze verify` where it runs.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { runInNewContext } from 'node:vm';
import { parseConfig } from '../../src/config/config';
import { exampleServices, explain, repo, ROOT, run, scratchDir, which } from './helpers';

type Unit = Record<string, Record<string, string[]>>;

/** systemd's INI dialect: [Section], Key=Value (repeatable), # and ; comments, \ continuations. */
function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section: Record<string, string[]> | null = null;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      section = unit[header[1]] = unit[header[1]] ?? {};
      return;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line);
    assert.ok(kv, `line ${i + 1} is neither a section, a comment nor Key=Value: ${raw}`);
    assert.ok(section, `line ${i + 1}: key outside any section`);
    (section[kv[1]] = section[kv[1]] ?? []).push(kv[2].trim());
  });
  return unit;
}

const UNIT_DIR = 'deploy/systemd';
const unit = (name: string): Unit => parseUnit(readFileSync(repo(UNIT_DIR, name), 'utf8'));
const one = (u: Unit, section: string, key: string): string | undefined => u[section]?.[key]?.at(-1);
const env = (u: Unit): Record<string, string> =>
  Object.fromEntries((u.Service?.Environment ?? []).map((e) => e.split(/=(.*)/s).slice(0, 2) as [string, string]));

describe('systemd units', () => {
  it('every unit file parses with [Unit] and its type section', () => {
    const files = readdirSync(repo(UNIT_DIR)).filter((f) => /\.(service|timer)$/.test(f));
    for (const f of [
      'selfheal-worker.service',
      'selfheal-api.service',
      'selfhealing-check.service',
      'selfhealing-check.timer',
    ]) {
      assert.ok(files.includes(f), `missing ${f}`);
    }
    for (const f of files) {
      const u = unit(f);
      assert.ok(one(u, 'Unit', 'Description'), `${f}: no Description`);
      assert.ok(u[f.endsWith('.timer') ? 'Timer' : 'Service'], `${f}: no type section`);
    }
  });

  it('the worker and the API run from /opt/selfheal as user selfheal with /etc/selfheal/selfheal.yaml', () => {
    for (const [file, command] of [
      // node from systemd's default PATH: NodeSource's /usr/bin/node or a tarball's /usr/local/bin/node.
      ['selfheal-worker.service', /^\/usr\/bin\/env node \/opt\/selfheal\/bin\/selfheal\.js worker --host \S+/],
      ['selfheal-api.service', /^\/usr\/bin\/env node \/opt\/selfheal\/bin\/selfheal\.js api$/],
    ] as const) {
      const u = unit(file);
      assert.match(one(u, 'Service', 'ExecStart') ?? '', command, file);
      assert.equal(one(u, 'Service', 'User'), 'selfheal', file);
      assert.equal(one(u, 'Service', 'WorkingDirectory'), '/opt/selfheal', file);
      assert.equal(env(u).SELFHEAL_CONFIG, '/etc/selfheal/selfheal.yaml', file);
      assert.equal(one(u, 'Service', 'Restart'), 'always', file);
      assert.equal(one(u, 'Service', 'ProtectSystem'), 'strict', file);
      assert.equal(one(u, 'Service', 'StateDirectory'), 'selfheal', file);
      assert.equal(one(u, 'Service', 'LogsDirectory'), 'selfheal', file);
      assert.equal(one(u, 'Install', 'WantedBy'), 'multi-user.target', file);
    }
    assert.equal(one(unit('selfheal-api.service'), 'Service', 'NoNewPrivileges'), 'yes');
  });

  it('the host config writes only where the units may write, and guards the homelab services', () => {
    const config = parseConfig(readFileSync(repo(UNIT_DIR, 'selfheal.yaml'), 'utf8'), {
      source: 'selfheal.yaml',
      env: {},
      cwd: '/opt/selfheal',
    });
    for (const file of ['selfheal-worker.service', 'selfheal-api.service', 'selfheal-temporal.service']) {
      const s = unit(file).Service;
      const writable = [
        ...(s.StateDirectory ?? []).map((d) => `/var/lib/${d}`),
        ...(s.LogsDirectory ?? []).map((d) => `/var/log/${d}`),
        ...(s.ReadWritePaths ?? []).flatMap((p) => p.split(/\s+/)).filter((p) => !p.startsWith('-')),
      ];
      const uses =
        file === 'selfheal-temporal.service'
          ? [config.temporal.dataDir]
          : [config.temporal.dataDir, config.worker.stateDir, dirname(config.audit.file)];
      for (const path of uses) {
        assert.ok(
          writable.some((w) => path === w || path.startsWith(`${w}/`)),
          `${file}: ${path} is read-only under ProtectSystem=strict (writable: ${writable.join(', ')})`,
        );
      }
    }
    assert.deepEqual(
      config.services.map((s) => `${s.host}/${s.name}`),
      exampleServices().map((s) => `${s.host}/${s.name}`),
    );
  });

  it('the worker keeps what `systemctl restart` needs: D-Bus, the real user, a working JIT', () => {
    const s = unit('selfheal-worker.service').Service;
    assert.ok(s.RestrictAddressFamilies?.at(-1)?.split(/\s+/).includes('AF_UNIX'), 'the system bus is AF_UNIX');
    assert.notEqual(s.PrivateUsers?.at(-1), 'yes', 'polkit must see the real selfheal user');
    assert.equal(s.MemoryDenyWriteExecute, undefined, 'Node.js needs W+X memory for its JIT');
  });

  it('the sudo drop-in turns off NoNewPrivileges and every option that implies it', () => {
    // systemd.exec(5): for a non-root service these imply NoNewPrivileges=yes, under which setuid sudo fails.
    const IMPLY_NNP = [
      'NoNewPrivileges',
      'DynamicUser',
      'LockPersonality',
      'MemoryDenyWriteExecute',
      'PrivateDevices',
      'ProtectClock',
      'ProtectHostname',
      'ProtectKernelLogs',
      'ProtectKernelModules',
      'ProtectKernelTunables',
      'RestrictAddressFamilies',
      'RestrictNamespaces',
      'RestrictRealtime',
      'RestrictSUIDSGID',
      'SystemCallArchitectures',
      'SystemCallFilter',
      'SystemCallLog',
    ];
    const base = unit('selfheal-worker.service').Service;
    const dropIn = unit('selfheal-worker-sudo.conf').Service;
    for (const key of IMPLY_NNP) {
      // Drop-in values come after the unit's; an empty assignment resets a list, the last boolean wins.
      const values = [...(base[key] ?? []), ...(dropIn[key] ?? [])];
      const effective = values.slice(values.lastIndexOf('') + 1).at(-1);
      assert.ok(effective === undefined || effective === 'no', `${key} is still ${effective} with the sudo drop-in`);
    }
    assert.equal(base.NoNewPrivileges?.at(-1), 'yes', 'without the drop-in (polkit) the worker keeps NoNewPrivileges');
  });

  it('the polkit rule lets user selfheal restart exactly the guarded units', () => {
    const YES = 'yes';
    const NOT_HANDLED = 'not_handled';
    let rule: ((action: unknown, subject: unknown) => string) | undefined;
    const polkit = { Result: { YES, NO: 'no', NOT_HANDLED }, addRule: (fn: typeof rule) => (rule = fn) };
    runInNewContext(readFileSync(repo('deploy/polkit/50-selfheal.rules'), 'utf8'), { polkit });
    assert.ok(rule, 'the file must call polkit.addRule');
    const ask = (user: string, verb: string, unitName: string, id = 'org.freedesktop.systemd1.manage-units') =>
      rule!({ id, lookup: (k: string) => ({ verb, unit: unitName })[k] }, { user });
    for (const s of exampleServices()) assert.equal(ask('selfheal', 'restart', s.name), YES, s.name);
    assert.equal(ask('selfheal', 'stop', 'jira-worker.service'), NOT_HANDLED);
    assert.equal(ask('selfheal', 'restart', 'sshd.service'), NOT_HANDLED);
    assert.equal(ask('selfheal', 'restart', 'crypto-agent@BTC_USDT.service.d'), NOT_HANDLED);
    assert.equal(ask('nobody', 'restart', 'jira-worker.service'), NOT_HANDLED);
    assert.equal(ask('selfheal', 'restart', 'jira-worker.service', 'org.freedesktop.login1.reboot'), NOT_HANDLED);
  });

  it('the check service runs the poll script once per start, with a lock it can write', () => {
    const u = unit('selfhealing-check.service');
    assert.equal(one(u, 'Service', 'Type'), 'oneshot');
    assert.equal(one(u, 'Service', 'ExecStart'), '/opt/selfheal/tools/selfheal/selfhealing_restart.sh');
    assert.equal(one(u, 'Service', 'User'), 'selfheal');
    const lock = env(u).SELFHEAL_LOCK_FILE;
    assert.ok(lock, 'SELFHEAL_LOCK_FILE is not set');
    const writable = (u.Service.ReadWritePaths ?? []).flatMap((p) => p.split(/\s+/));
    assert.ok(
      writable.some((p) => lock.startsWith(p.replace(/^-/, '') + '/')),
      `ProtectSystem=strict: ${lock} must be under ReadWritePaths`,
    );
  });

  it('the timer starts the check 30 s after boot and every 30 s after that, to the second', () => {
    const t = unit('selfhealing-check.timer');
    assert.equal(one(t, 'Timer', 'OnBootSec'), '30s');
    assert.equal(one(t, 'Timer', 'OnUnitActiveSec'), '30s');
    assert.equal(one(t, 'Timer', 'AccuracySec'), '1s');
    assert.equal(one(t, 'Timer', 'Unit') ?? 'selfhealing-check.service', 'selfhealing-check.service');
    assert.equal(one(t, 'Install', 'WantedBy'), 'timers.target');
  });

  it('pass systemd-analyze verify without warnings', (t) => {
    const analyze = which('systemd-analyze');
    if (!analyze) return t.skip('systemd-analyze is not installed');
    // Point the install paths at this checkout so ExecStart= targets exist (test/e2e/host-install.test.ts
    // verifies the units at their installed paths).
    const dir = scratchDir('selfheal-units-');
    const files = readdirSync(repo(UNIT_DIR)).filter((f) => /\.(service|timer)$/.test(f));
    for (const f of files) {
      writeFileSync(join(dir, f), readFileSync(repo(UNIT_DIR, f), 'utf8').replaceAll('/opt/selfheal', ROOT));
    }
    // And the worker once more with the sudo drop-in in place.
    const withDropIn = join(dir, 'with-sudo');
    mkdirSync(join(withDropIn, 'selfheal-worker.service.d'), { recursive: true });
    copyFileSync(join(dir, 'selfheal-worker.service'), join(withDropIn, 'selfheal-worker.service'));
    copyFileSync(
      repo(UNIT_DIR, 'selfheal-worker-sudo.conf'),
      join(withDropIn, 'selfheal-worker.service.d', 'sudo.conf'),
    );
    const units = [...files.map((f) => join(dir, f)), join(withDropIn, 'selfheal-worker.service')];
    const r = run(analyze, ['verify', '--man=no', ...units], { cwd: dir });
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.stderr.trim(), '', explain(r));
  });
});
