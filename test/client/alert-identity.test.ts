// Alert intake tracks each alert by its identity, not by its name (issue 8, defect 1): Alertmanager
// groups several alerts of one name per service, and one of them can resolve while another fires.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alertIdentity, labelsFingerprint, planAlerts } from '../../src/client/alert-intake';
import { testConfig } from '../helpers/config';

const config = testConfig('services:\n  - { name: a.service, host: h1 }\n');
const labels = (reason: string) => ({ alertname: 'ServiceStalled', service: 'a.service', host: 'h1', reason });

describe('alert identity', () => {
  it("uses Alertmanager's fingerprint when the alert has one", () => {
    assert.equal(alertIdentity({ labels: labels('down'), fingerprint: 'c0ffee12345678ab' }), 'c0ffee12345678ab');
  });

  it("otherwise computes Alertmanager's own fingerprint of the label set (order-independent)", () => {
    // Values from Prometheus' model.LabelSet.Fingerprint() (FNV-1a 64 over sorted name/value pairs).
    assert.equal(labelsFingerprint({}), 'cbf29ce484222325');
    const a = labelsFingerprint({ b: '2', a: '1' });
    assert.equal(a, labelsFingerprint({ a: '1', b: '2' }));
    assert.match(a, /^[0-9a-f]{16}$/);
    assert.notEqual(labelsFingerprint(labels('down')), labelsFingerprint(labels('unit-inactive')));
  });

  it('plans one firing and one resolved signal carrying the identities of a mixed notification', () => {
    const plan = planAlerts(config, [
      { status: 'resolved', labels: labels('down'), fingerprint: 'fp-down' },
      { status: 'firing', labels: labels('unit-inactive'), fingerprint: 'fp-inactive' },
    ]);
    assert.equal(plan.signals.length, 2);
    const firing = plan.signals.find((s) => s.status === 'firing')!;
    const resolved = plan.signals.find((s) => s.status === 'resolved')!;
    assert.deepEqual(firing.alerts, [{ id: 'fp-inactive', name: 'ServiceStalled' }]);
    assert.deepEqual(resolved.alerts, [{ id: 'fp-down', name: 'ServiceStalled' }]);
    assert.deepEqual(firing.alertnames, ['ServiceStalled']);
  });

  it('keeps one entry per identity when an alert is repeated in one notification', () => {
    const plan = planAlerts(config, [
      { status: 'firing', labels: labels('down'), fingerprint: 'fp-down' },
      { status: 'firing', labels: labels('down'), fingerprint: 'fp-down' },
    ]);
    assert.equal(plan.signals.length, 1);
    assert.deepEqual(plan.signals[0].alerts, [{ id: 'fp-down', name: 'ServiceStalled' }]);
  });
});
