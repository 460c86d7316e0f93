import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/config';
import { parseListen } from '../../src/util/parse';
import { hostNameProblem, unitNameProblem } from '../../src/config/names';
import { tempDir } from '../helpers/config';

function problems(yaml: string, env: NodeJS.ProcessEnv = {}) {
  try {
    parseConfig(yaml, { env, cwd: '/srv' });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

const minimal = 'services:\n  - { name: a.service, host: h }\n';

describe('config', () => {
  it('loads the shipped example with the homelab seven services', () => {
    const c = loadConfig('examples/selfheal.yaml', {});
    assert.equal(c.services.length, 7);
    assert.deepEqual(
      c.services.map((s) => s.name),
      [
        'jira-worker.service',
        'crypto-agent@BTC_USDT.service',
        'crypto-agent@ETH_USDT.service',
        'crypto-agent@XRP_USDT.service',
        'crypto-agent@SOL_USDT.service',
        'crypto-agent@DOGE_USDT.service',
        'crypto-agent@ADA_USDT.service',
      ],
    );
    assert.equal(c.policy.validationWindowMs, 120_000);
    assert.equal(c.policy.cooldownMs, 60_000);
    assert.equal(c.policy.maxRestartsPerHour, 3);
    assert.equal(c.policy.maxConsecutiveFailures, 2);
    assert.equal(c.services[1].policy.cooldownMs, 30_000, 'per-service override');
    assert.equal(c.services[0].policy.cooldownMs, 60_000);
    assert.equal(c.temporal.embedded, true);
    assert.equal(c.api.port, 5000);
    assert.equal(c.api.token, null, 'optional token left unset');
  });

  it('applies defaults and resolves relative paths', () => {
    const c = parseConfig(minimal, { env: {}, cwd: '/srv' });
    assert.equal(c.temporal.dataDir, '/srv/data');
    assert.equal(c.audit.file, '/srv/data/selfheal.log');
    assert.equal(c.temporal.address, 'embedded');
    assert.equal(c.services[0].manager, 'systemd');
    assert.equal(c.services[0].unit, 'a.service');
    assert.equal(c.worker.maxCachedWorkflows, 250, 'the worker cache is bounded by default');
    assert.deepEqual(c.alerts.ignoreAlertnames, [
      'SelfHealingExhausted',
      'ConsecutiveFailures',
      'SelfHealingActive',
      'SelfHealingUnavailable',
      'SelfHealingBreakerOpen',
      'ServiceFlapping',
    ]);
  });

  it('substitutes ${ENV} and ${ENV:-default} in values', () => {
    const c = parseConfig(`api: { token: "\${TOK}", adminToken: "\${ADM:-0123456789abcdef0}" }\n${minimal}`, {
      env: { TOK: 'secret-secret-secret' },
    });
    assert.equal(c.api.token, 'secret-secret-secret');
    assert.equal(c.api.adminToken, '0123456789abcdef0');
  });

  it('names the key, the line and the problem for each error, all at once', () => {
    const p = problems(
      [
        'temporal: { adress: x }', // 1
        'polcy:', // 2
        '  cooldown: 6os', // 3
        'api: { token: "${MISSING}" }', // 4
        'services:', // 5
        '  - name: "a;rm -rf /"', // 6
        '    host: h', // 7
        '  - { name: b.service, host: h, policy: { mode: yolo, maxRestartsPerHour: -1, cooldown: 90 } }', // 8
        '  - { name: b.service, host: h }', // 9
        '  - { name: c.service }', // 10
      ].join('\n'),
    );
    const text = p.map((x) => `${x.line}:${x.path}: ${x.message}`);
    const has = (re: RegExp) =>
      assert.ok(
        text.some((t) => re.test(t)),
        `${re} in\n${text.join('\n')}`,
      );
    has(/^1:temporal\.adress: unknown key \(did you mean "address"\?\)/);
    has(/^2:polcy: unknown key \(did you mean "policy"\?\)/);
    has(/^4:api\.token: environment variable MISSING is not set/);
    has(/^6:services\[0\]\.name: "a;rm -rf \/" contains characters not allowed/);
    has(/^8:services\[1\]\.policy\.mode: must be one of auto, approval, dry-run; got "yolo"/);
    has(/^8:services\[1\]\.policy\.maxRestartsPerHour: must be between 0 and 1000, got -1/);
    has(/^8:services\[1\]\.policy\.cooldown: must be a duration with a unit/);
    has(/^9:services\[2\]\.name: "b\.service" on host "h" is already listed at services\[1\]/);
    has(/^10:services\[3\]\.host: is required/);
  });

  it('reports YAML syntax errors with their line', () => {
    const p = problems('services:\n  - { name: a\n');
    assert.match(p[0].message, /^YAML syntax/);
    assert.ok(p[0].line && p[0].line >= 2);
  });

  it('requires services and refuses an insecure API off loopback', () => {
    assert.ok(problems('{}').some((x) => x.path === 'services'));
    assert.ok(
      problems(`api: { listen: "0.0.0.0:5000", insecure: true }\n${minimal}`).some((x) => x.path === 'api.insecure'),
    );
    assert.ok(problems(`api: { token: short }\n${minimal}`).some((x) => /shorter than 16/.test(x.message)));
  });

  it('explains a missing file', () => {
    const dir = tempDir();
    assert.throws(() => loadConfig(join(dir, 'nope.yaml'), {}), /file not found/);
    writeFileSync(join(dir, 'selfheal.yaml'), minimal);
    assert.equal(loadConfig(undefined, { SELFHEAL_CONFIG: join(dir, 'selfheal.yaml') }).services.length, 1);
  });

  it('parses listen addresses', () => {
    assert.deepEqual(parseListen('127.0.0.1:5000'), { host: '127.0.0.1', port: 5000 });
    assert.deepEqual(parseListen('[::1]:80'), { host: '::1', port: 80 });
    assert.deepEqual(parseListen(':9000'), { host: '0.0.0.0', port: 9000 });
    assert.equal(parseListen('nope'), null);
  });
});

describe('names', () => {
  it('accepts real unit names', () => {
    for (const u of ['jira-worker.service', 'crypto-agent@BTC_USDT.service', 'a:b.timer', 'x']) {
      assert.equal(unitNameProblem(u), null, u);
    }
  });
  it('rejects shell metacharacters, options and paths', () => {
    for (const u of [
      'a;b',
      'a b',
      '$(id)',
      '`id`',
      'a|b',
      'a&b',
      '-x',
      '.hidden',
      '../etc',
      'a/b',
      "a'b",
      'a\nb',
      '',
    ]) {
      assert.notEqual(unitNameProblem(u), null, JSON.stringify(u));
    }
    assert.notEqual(unitNameProblem('a'.repeat(256)), null);
  });
  it('validates host names', () => {
    assert.equal(hostNameProblem('homelab'), null);
    assert.equal(hostNameProblem('web-01.example.com'), null);
    assert.notEqual(hostNameProblem('a b'), null);
    assert.notEqual(hostNameProblem('-h'), null);
  });
  it('rejects a verifyTimeout shorter than the default verifyStableFor (every verification would fail)', () => {
    const ps = problems('policy: { verifyTimeout: 5s }\n' + minimal);
    const p = ps.find((x) => x.path === 'policy.verifyTimeout');
    assert.ok(p, JSON.stringify(ps));
    assert.match(p.message, /verifyStableFor/);
    assert.equal(p.line, 1);
    const perService = problems('services:\n  - name: a.service\n    host: h\n    policy: { verifyTimeout: 8s }\n');
    assert.ok(
      perService.some((x) => x.path === 'services[0].policy.verifyTimeout' && x.line === 4),
      JSON.stringify(perService),
    );
  });

  it('rejects two entries for the same unit on one host (two budgets for one unit)', () => {
    const ps = problems(
      'services:\n  - { name: a.service, host: h }\n  - { name: alias, host: h, unit: a.service }\n  - { name: a.service, host: other }\n',
    );
    assert.equal(ps.length, 1, JSON.stringify(ps));
    assert.equal(ps[0].path, 'services[1].unit');
    assert.equal(ps[0].line, 3);
    assert.match(ps[0].message, /services\[0\]/);
  });
});
