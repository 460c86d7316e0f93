// planAlerts and hostFromInstance are pure: label mapping, validation, the allowlist and grouping,
// tested here without any server.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostFromInstance, planAlerts, type IncomingAlert } from '../../src/client/alert-intake';
import { testConfig } from '../helpers/config';

const config = testConfig(`services:
  - { name: jira-worker.service, host: homelab }
  - { name: crypto-agent@BTC_USDT.service, host: homelab }
  - { name: twin.service, host: web1 }
  - { name: twin.service, host: web-2 }
`);

const alert = (
  labels: Record<string, string>,
  status: 'firing' | 'resolved' = 'firing',
  extra = {},
): IncomingAlert => ({
  status,
  labels: { alertname: 'ServiceStalled', ...labels },
  ...extra,
});

describe('hostFromInstance', () => {
  it('drops the port of host:port and of [ipv6]:port', () => {
    assert.equal(hostFromInstance('web-1:9100'), 'web-1');
    assert.equal(hostFromInstance('10.0.0.5:9100'), '10.0.0.5');
    assert.equal(hostFromInstance('[::1]:9100'), '::1');
    assert.equal(hostFromInstance('[fe80::1%eth0]:9100'), 'fe80::1%eth0');
  });

  it('keeps an instance without a port as it is', () => {
    assert.equal(hostFromInstance('web-1'), 'web-1');
    assert.equal(hostFromInstance('[::1]'), '::1');
    assert.equal(hostFromInstance('web-1:metrics'), 'web-1:metrics', 'not a port: kept, and later rejected');
    assert.equal(hostFromInstance(':9100'), ':9100', 'nothing before the port: kept, and later rejected');
  });

  it('null for a missing or empty instance', () => {
    assert.equal(hostFromInstance(undefined), null);
    assert.equal(hostFromInstance(''), null);
  });
});

describe('planAlerts', () => {
  it('maps the service and host labels to the workflow of a configured service', () => {
    const plan = planAlerts(config, [alert({ service: 'jira-worker.service', host: 'homelab' })]);
    assert.deepEqual(plan.ignored, []);
    assert.deepEqual(plan.rejected, []);
    assert.equal(plan.signals.length, 1);
    assert.equal(plan.signals[0].workflowId, 'selfheal/homelab/jira-worker.service');
    assert.equal(plan.signals[0].status, 'firing');
  });

  it('takes the host from `instance` without its port when there is no host label, and prefers the host label', () => {
    const fromInstance = planAlerts(config, [alert({ service: 'twin.service', instance: 'web-2:9100' })]);
    assert.equal(fromInstance.signals[0]?.workflowId, 'selfheal/web-2/twin.service');
    const both = planAlerts(config, [alert({ service: 'twin.service', host: 'web1', instance: 'web-2:9100' })]);
    assert.equal(both.signals[0]?.workflowId, 'selfheal/web1/twin.service');
    const emptyHost = planAlerts(config, [alert({ service: 'twin.service', host: '', instance: 'web-2:9100' })]);
    assert.equal(emptyHost.signals[0]?.workflowId, 'selfheal/web-2/twin.service', 'an empty host label falls back');
  });

  it('reads the label names from the config', () => {
    const custom = testConfig(`alerts: { serviceLabel: unit, hostLabel: node }
services: [ { name: a.service, host: h1 } ]
`);
    const plan = planAlerts(custom, [
      alert({ unit: 'a.service', node: 'h1' }),
      alert({ service: 'a.service', host: 'h1' }),
    ]);
    assert.equal(plan.signals.length, 1);
    assert.equal(plan.signals[0].workflowId, 'selfheal/h1/a.service');
    assert.equal(plan.ignored.length, 1);
    assert.match(plan.ignored[0].reason, /no "unit" or "node" \(or "instance"\) label/);
  });

  it('ignores alerts about self-healing itself, with the reason', () => {
    const plan = planAlerts(config, [
      alert({ alertname: 'SelfHealingExhausted', service: 'jira-worker.service', host: 'homelab' }),
      alert({ alertname: 'SelfHealingActive', service: 'jira-worker.service', host: 'homelab' }),
    ]);
    assert.deepEqual(plan.signals, []);
    assert.deepEqual(
      plan.ignored.map((x) => [x.kind, x.reason]),
      [
        ['ignored-alertname', 'SelfHealingExhausted is about self-healing itself'],
        ['ignored-alertname', 'SelfHealingActive is about self-healing itself'],
      ],
    );
  });

  it('ignores alerts without a service or a host, naming what is missing', () => {
    const plan = planAlerts(config, [
      alert({ host: 'homelab' }),
      alert({ service: 'jira-worker.service' }),
      { status: 'firing', labels: {} },
    ]);
    assert.deepEqual(plan.signals, []);
    assert.deepEqual(
      plan.ignored.map((x) => x.reason),
      ['no "service" label', 'no "host" (or "instance") label', 'no "service" or "host" (or "instance") label'],
    );
    assert.equal(plan.ignored[2].alertname, null);
  });

  it('rejects unit and host names that could be read as options, paths or shell, whatever the allowlist', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ service: 'jira-worker.service; reboot', host: 'homelab' }, /invalid service name: contains characters/],
      [{ service: '$(id)', host: 'homelab' }, /invalid service name/],
      [{ service: '-jira-worker.service', host: 'homelab' }, /invalid service name: must not start with "-" or "."/],
      [{ service: '--now', host: 'homelab' }, /invalid service name/],
      [{ service: '..', host: 'homelab' }, /invalid service name/],
      [{ service: '../../etc/passwd', host: 'homelab' }, /invalid service name/],
      [{ service: 'jira-worker.service\u0000', host: 'homelab' }, /invalid service name/],
      [{ service: 'x'.repeat(256), host: 'homelab' }, /longer than 255/],
      [{ service: 'jira-worker.service', host: 'homelab;id' }, /invalid host name/],
      [{ service: 'jira-worker.service', host: '-homelab' }, /invalid host name/],
      [{ service: 'jira-worker.service', instance: '[::1]:9100' }, /invalid host name/],
    ];
    const plan = planAlerts(
      config,
      bad.map(([labels]) => alert(labels)),
    );
    assert.deepEqual(plan.signals, []);
    assert.equal(plan.rejected.length, bad.length);
    plan.rejected.forEach((r, i) => {
      assert.equal(r.kind, 'invalid-name');
      assert.match(r.reason, bad[i][1], JSON.stringify(bad[i][0]));
    });
  });

  it('ignores valid names that are not configured on that host (the allowlist)', () => {
    const plan = planAlerts(config, [
      alert({ service: 'other.service', host: 'homelab' }),
      alert({ service: 'jira-worker.service', host: 'web1' }),
      alert({ service: 'JIRA-WORKER.SERVICE', host: 'homelab' }),
      alert({ service: 'jira-worker', host: 'homelab' }),
    ]);
    assert.deepEqual(plan.signals, []);
    assert.deepEqual(
      plan.ignored.map((x) => [x.kind, x.reason]),
      [
        ['unknown-service', 'other.service on homelab is not a configured service'],
        ['unknown-service', 'jira-worker.service on web1 is not a configured service'],
        ['unknown-service', 'JIRA-WORKER.SERVICE on homelab is not a configured service'],
        ['unknown-service', 'jira-worker on homelab is not a configured service'],
      ],
    );
  });

  it('accounts for every alert exactly once: acted on, ignored or rejected', () => {
    const alerts = [
      alert({ service: 'jira-worker.service', host: 'homelab' }),
      alert({ service: 'jira-worker.service', host: 'homelab' }, 'resolved'),
      alert({ service: 'nope.service', host: 'homelab' }),
      alert({ service: 'a b', host: 'homelab' }),
      alert({ alertname: 'ConsecutiveFailures', service: 'twin.service', host: 'web1' }),
    ];
    const plan = planAlerts(config, alerts);
    assert.equal(plan.ignored.length + plan.rejected.length, 3);
    assert.deepEqual(
      plan.signals.map((s) => s.workflowId),
      ['selfheal/homelab/jira-worker.service', 'selfheal/homelab/jira-worker.service'],
    );
  });

  // Today's grouping: one signal per service and status, carrying every alert name once, sorted.
  it('groups the alerts of one service and status into one signal with each alert name once, sorted', () => {
    const plan = planAlerts(config, [
      alert({ alertname: 'ServiceStalled', service: 'jira-worker.service', host: 'homelab' }),
      alert({ alertname: 'ServiceDown', service: 'jira-worker.service', host: 'homelab' }),
      alert({ alertname: 'ServiceStalled', service: 'jira-worker.service', host: 'homelab' }),
      alert({ alertname: 'ServiceDown', service: 'jira-worker.service', host: 'homelab' }, 'resolved'),
      { status: 'firing', labels: { service: 'twin.service', host: 'web1' } },
    ]);
    assert.deepEqual(
      plan.signals.map((s) => [s.workflowId, s.status, s.alertnames]),
      [
        ['selfheal/homelab/jira-worker.service', 'firing', ['ServiceDown', 'ServiceStalled']],
        ['selfheal/homelab/jira-worker.service', 'resolved', ['ServiceDown']],
        ['selfheal/web1/twin.service', 'firing', ['unnamed']],
      ],
    );
  });

  it('keeps the first summary of firing alerts, clipped to 200 characters', () => {
    const plan = planAlerts(config, [
      alert({ service: 'jira-worker.service', host: 'homelab' }, 'firing', {
        annotations: { description: 'd'.repeat(500) },
        startsAt: '2026-01-01T10:05:00Z',
      }),
      alert({ service: 'jira-worker.service', host: 'homelab' }, 'firing', {
        annotations: { summary: 'second' },
        startsAt: '2026-01-01T10:00:00Z',
      }),
    ]);
    const s = plan.signals[0];
    assert.equal(s.summary?.length, 200);
    assert.ok(s.summary?.endsWith('…'));
  });

  it('does not read label names from the prototype chain', () => {
    const labels = JSON.parse('{"__proto__": {"service": "jira-worker.service", "host": "homelab"}}') as Record<
      string,
      string
    >;
    const plan = planAlerts(config, [{ status: 'firing', labels }]);
    assert.deepEqual(plan.signals, []);
    assert.equal(plan.ignored[0].kind, 'missing-labels');
  });
});
