// The host install, done the way README.md ("Install on a host (systemd)") tells an operator, into a
// temporary root (test/helpers/install-root.ts: overlays on /etc, /opt and /var, a private loopback,
// hostname homelab.lan), and then run under an emulation of the units' own sandbox
// (ProtectSystem=strict with their ReadWritePaths=/StateDirectory=/LogsDirectory=, PrivateTmp=,
// ProtectHome=, User=). It proves:
// - the README's lines run as written (every line of the block, except the three this machine cannot
//   do and the test does in their place, listed in SUBSTITUTED), and systemd-analyze verify passes on
//   the units as installed;
// - the split deployment (selfheal-temporal, selfheal-worker with --control, selfheal-api) is healthy
//   for the shipped Prometheus config and rules: no alert at all, SelfHealingUnavailable included;
// - a stopped unit is restarted and the restart is in the audit log, with all state in
//   /var/lib/selfheal and nothing under the read-only /opt/selfheal;
// - after logrotate's rename-style rotation with the shipped snippet, the next restart is audited in
//   the new file.
// What differs from a real host (and why) is done in before() and said there.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runInNewContext } from 'node:vm';
import { parseDocument, stringify, parse } from 'yaml';
import type { AuditRecord } from '../../src/activities/audit';
import { ROOT } from '../helpers/cli';
import { InstallRoot, type RootProcess } from '../helpers/install-root';
import { waitFor } from '../helpers/wait';

const UNIT_ORDER = ['selfheal-temporal.service', 'selfheal-worker.service', 'selfheal-api.service'];
const USER_RUNTIME = '/run/selfheal-test-user';
const JIRA = 'jira-worker.service';
const AUDIT = '/var/log/selfheal/eddie-selfheal.log';

/**
 * README lines this machine cannot run, and what the test does instead:
 * - `npm ci`: the checkout bound at /opt/selfheal already has its node_modules (the test run's setup);
 * - `systemctl daemon-reload`: there is no systemd as PID 1; `systemd-analyze verify` checks the units;
 * - `systemctl enable --now UNITS`: each unit's ExecStart runs under the emulated sandbox, in order.
 */
const SUBSTITUTED = [/^npm ci$/, /^systemctl daemon-reload$/, /^systemctl enable --now (.+)$/];

/** The shell lines of the README's install block, continuation lines joined, comments dropped. */
function readmeInstallLines(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = /^## Install on a host \(systemd\)\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1];
  assert.ok(section, 'README.md has no "## Install on a host (systemd)" section');
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'the install section has no ```sh block');
  return block
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

let root: InstallRoot;
const units = new Map<string, RootProcess>();
let enabled: string[] = [];
let token = '';

const audit = (path = AUDIT): AuditRecord[] =>
  root
    .read(path)
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditRecord);

const starts = (): number => {
  const r = root.exec(['cat', join(USER_RUNTIME, 'jira-starts')]);
  return r.status === 0 ? r.stdout.split('\n').filter(Boolean).length : 0;
};

function userctl(...args: string[]) {
  return root.exec(['systemctl', '--user', ...args], {
    env: { PATH: process.env.PATH, XDG_RUNTIME_DIR: USER_RUNTIME },
  });
}

function alert(status: 'firing' | 'resolved') {
  const r = root.fetch('http://127.0.0.1:5000/selfheal/trigger', {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      version: '4',
      status,
      receiver: 'selfheal',
      alerts: [{ status, labels: { alertname: 'ServiceStalled', service: JIRA, host: 'homelab' } }],
    }),
  });
  assert.equal(r.status, 200, r.body);
}

function unitLogs(): string {
  return [...units].map(([n, p]) => `--- ${n}\n${p.log().slice(-3000)}`).join('\n');
}

/** Stops JIRA as a crash would, raises the alert, and waits for selfheal's verified restart. */
async function incident(before: number): Promise<void> {
  assert.equal(userctl('stop', JIRA).status, 0);
  alert('firing');
  await waitFor(() => starts() === before + 1, { what: `${JIRA} restarted by selfheal`, timeoutMs: 40_000 }).catch(
    (err: Error) => {
      throw new Error(`${err.message}\n${unitLogs()}`);
    },
  );
  await waitFor(
    () =>
      audit().filter((r) => r.service === JIRA && r.event === 'attempt-finished' && r.result === 'success').length >
        0 && audit().some((r) => r.service === JIRA && r.event === 'incident-closed'),
    { what: 'the verified restart in the audit log', timeoutMs: 30_000 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${unitLogs()}`);
  });
  alert('resolved');
}

before(
  async () => {
    root = await InstallRoot.create({ checkout: ROOT, hostname: 'homelab.lan' });

    // The README's block, line by line, as root inside the temporary root.
    const lines = readmeInstallLines();
    const script: string[] = [];
    for (const line of lines) {
      const sub = SUBSTITUTED.find((re) => re.test(line));
      if (!sub) {
        script.push(line);
        continue;
      }
      const m = /^systemctl enable --now (.+)$/.exec(line);
      if (m) enabled = m[1].split(/\s+/);
      script.push(`: substituted by the test: ${line}`);
    }
    assert.deepEqual(
      SUBSTITUTED.map((re) => lines.filter((l) => re.test(l)).length),
      [1, 1, 1],
      'the README block has exactly the lines the test substitutes',
    );
    const r = root.bash(script.join('\n'), { timeoutMs: 240_000 });
    assert.equal(r.status, 0, `the README's install lines failed:\n${r.stdout}\n${r.stderr}`);
    token = /^SELFHEAL_TOKEN=(\S+)$/m.exec(root.read('/etc/selfheal/selfheal.env'))?.[1] ?? '';
    assert.ok(token.length >= 32, 'the install generated the API token');

    // What differs on this machine: no systemd as PID 1, so the guarded unit runs under a private
    // systemd user manager (manager: systemd-user), whose socket the worker finds through
    // XDG_RUNTIME_DIR; a user manager takes requests from its own uid only, so the worker unit runs as
    // root here (launchUnit asRoot), the others as selfheal. Shorter windows so an incident takes
    // seconds. Everything else (paths, ports, units, logrotate) is as installed.
    const cfg = parseDocument(root.read('/etc/selfheal/selfheal.yaml'));
    for (const s of (cfg.toJS() as { services: unknown[] }).services.keys())
      cfg.setIn(['services', s, 'manager'], 'systemd-user');
    cfg.setIn(['policy'], {
      validationWindow: '1s',
      cooldown: '1s',
      verifyTimeout: '20s',
      verifyStableFor: '1s',
      hostTimeout: '5s',
    });
    root.write('/etc/selfheal/selfheal.yaml', cfg.toString());
    root.write(
      '/etc/selfheal/selfheal.env',
      `${root.read('/etc/selfheal/selfheal.env')}XDG_RUNTIME_DIR=${USER_RUNTIME}\n`,
    );

    const userConfig = root.scratch('user-config');
    const unitDir = join(userConfig, 'systemd', 'user');
    execFileSync('mkdir', ['-p', unitDir]);
    writeFileSync(
      join(unitDir, JIRA),
      `[Unit]\nDescription=stand-in for the homelab's jira worker\n[Service]\n` +
        // A slice of its own: every private user manager puts units at /app.slice/<unit>, so two runs
        // of this file at once shared the cgroup of jira-worker.service, and one run's `stop` waited
        // (90 s, TimeoutStopSec) for the other run's process to leave it (test/helpers/systemd.ts).
        `Slice=selfheal${randomBytes(6).toString('hex')}.slice\n` +
        `ExecStart=/bin/sh -c 'echo started >> ${USER_RUNTIME}/jira-starts; exec sleep infinity'\n`,
    );
    assert.equal(root.bash(`install -d -m 0700 ${USER_RUNTIME}`).status, 0);
    const manager = root.spawn('systemd-user', ['/lib/systemd/systemd', '--user'], {
      PATH: process.env.PATH,
      XDG_RUNTIME_DIR: USER_RUNTIME,
      XDG_CONFIG_HOME: userConfig,
    });
    await waitFor(() => userctl('show', '--property=Version').status === 0 || !manager.running, {
      what: 'the private systemd user manager',
      timeoutMs: 15_000,
    });
    assert.equal(userctl('start', JIRA).status, 0, manager.log());
    await waitFor(() => starts() === 1, { what: `${JIRA} running` });
  },
  { timeout: 300_000 },
);

after(async () => {
  await root?.stop();
});

describe('host install as README.md describes it', () => {
  it('installs units that pass systemd-analyze verify as installed', () => {
    assert.deepEqual(enabled, UNIT_ORDER);
    const r = root.exec(['systemd-analyze', 'verify', '--man=no', ...enabled.map((u) => `/etc/systemd/system/${u}`)]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal(r.stderr.trim(), '', r.stderr);
  });

  it('installs a polkit rule that lets user selfheal restart exactly the configured units of this host', () => {
    let rule: ((action: unknown, subject: unknown) => unknown) | undefined;
    const polkit = {
      Result: { YES: 'yes', NO: 'no', NOT_HANDLED: 'not_handled' },
      addRule: (fn: typeof rule) => (rule = fn),
    };
    runInNewContext(root.read('/etc/polkit-1/rules.d/50-selfheal.rules'), { polkit });
    assert.ok(rule);
    const allows = (user: string, verb: string, unit: string) =>
      rule!({ id: 'org.freedesktop.systemd1.manage-units', lookup: (k: string) => ({ verb, unit })[k] }, { user }) ===
      'yes';
    const shipped = parse(readFileSync(join(ROOT, 'deploy/systemd/selfheal.yaml'), 'utf8')) as {
      services: { name: string }[];
    };
    for (const s of shipped.services) assert.ok(allows('selfheal', 'restart', s.name), s.name);
    assert.ok(!allows('selfheal', 'stop', JIRA));
    assert.ok(!allows('selfheal', 'restart', 'ssh.service'));
  });

  it('starts the split deployment, and the shipped Prometheus config and rules see it healthy: no alert', async () => {
    for (const name of enabled) {
      units.set(name, root.launchUnit(name, { asRoot: name === 'selfheal-worker.service' }));
    }
    await waitFor(
      () => {
        for (const [n, p] of units) if (!p.running) throw new Error(`${n} exited:\n${p.log()}`);
        return (
          units.get('selfheal-worker.service')!.log().includes('Press Ctrl-C to stop.') &&
          root.fetch('http://127.0.0.1:5000/readyz').status === 200
        );
      },
      { what: 'the worker and the API', timeoutMs: 50_000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${unitLogs()}`);
    });

    // monitoring/prometheus.yml as shipped, but every second, and only selfheal's own targets: no
    // node_exporter or homelab services run here (they would be down, and rightly alert).
    const shipped = parse(readFileSync(join(ROOT, 'monitoring/prometheus.yml'), 'utf8')) as {
      scrape_configs: { job_name: string }[];
    };
    const dir = root.scratch('prometheus');
    const promConfig = {
      ...shipped,
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: [join(ROOT, 'monitoring/prometheus/selfhealing_rules.yml')],
      alerting: undefined,
      scrape_configs: shipped.scrape_configs.filter((j) => j.job_name.startsWith('selfheal')),
    };
    assert.deepEqual(
      promConfig.scrape_configs.map((j) => j.job_name),
      ['selfheal', 'selfheal-control', 'selfheal-worker'],
    );
    writeFileSync(join(dir, 'prometheus.yml'), stringify(promConfig));
    const prom = root.spawn(
      'prometheus',
      [
        '/usr/bin/prometheus',
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        '--web.listen-address=127.0.0.1:9090',
      ],
      { PATH: process.env.PATH },
    );
    const query = (q: string): { metric: Record<string, string>; value: [number, string] }[] => {
      const r = root.fetch(`http://127.0.0.1:9090/api/v1/query?query=${encodeURIComponent(q)}`);
      if (r.status !== 200) throw new Error(`Prometheus ${r.status}: ${r.body}`);
      return (JSON.parse(r.body) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } })
        .data.result;
    };
    try {
      await waitFor(
        () =>
          query('up == 1').length === 3 &&
          query('selfhealing_temporal_up').length === 2 &&
          query('count_over_time(up[10s])').every((s) => Number(s.value[1]) >= 4),
        { what: 'four scrapes of selfheal, its control worker and its worker SDK metrics', timeoutMs: 30_000 },
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${prom.log().slice(-2000)}`);
      });
      assert.deepEqual(
        query('selfhealing_temporal_up')
          .map((s) => [s.metric.job, s.value[1]])
          .sort(),
        [
          ['selfheal', '1'],
          ['selfheal-control', '1'],
        ],
      );
      // A rule whose expression holds is at least pending after one evaluation: none may be.
      assert.deepEqual(
        query('ALERTS').map((s) => s.metric),
        [],
      );
    } finally {
      await prom.stop();
    }
  });

  it('restarts a stopped unit and audits it, keeping state in /var/lib/selfheal', async () => {
    await incident(1);
    const restarts = audit().filter((r) => r.service === JIRA && r.event === 'attempt-finished');
    assert.equal(restarts.length, 1);
    assert.equal(restarts[0].restarted, true);
    assert.equal(restarts[0].reason, 'verified');
    // The homelab's usual path reads the same log.
    assert.equal(root.read('/var/log/eddie-selfheal.log'), root.read(AUDIT));
    const st = root.bash(
      'stat -c %U /var/lib/selfheal /var/lib/selfheal/temporal.db && ls /var/lib/selfheal/host-state/restart-markers | wc -l',
    );
    assert.deepEqual(st.stdout.trim().split('\n'), ['selfheal', 'selfheal', '1'], st.stderr);
    assert.equal(root.exec(['test', '-e', '/opt/selfheal/data']).status, 1, 'nothing is written under /opt/selfheal');
  });

  it('keeps auditing after logrotate renames the audit log (the shipped snippet)', async () => {
    const r = root.exec(['logrotate', '--force', '--verbose', '/etc/logrotate.d/selfheal']);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const before = audit(`${AUDIT}.1`);
    assert.ok(
      before.some((x) => x.event === 'attempt-finished'),
      'the first restart is in the rotated file',
    );
    await incident(2);
    const now = audit();
    assert.ok(
      now.some((x) => x.service === JIRA && x.event === 'attempt-finished' && x.result === 'success' && x.restarted),
      'the restart after the rotation is audited in the new file',
    );
    assert.equal(audit(`${AUDIT}.1`).length, before.length, 'nothing more went to the rotated file');
    for (const [name, p] of units) assert.ok(p.running, `${name} is still running:\n${p.log()}`);
  });
});
