// `selfheal simulate` on history recorded by real parts: a real agent goes down under the real
// `selfheal start`, Prometheus records the shipped rule's ALERTS, Alertmanager delivers to the
// webhook (which records the delivery). Simulating either history under the same policy gives what
// really happened (one incident, one restart), and the simulation touches nothing live.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../helpers/cli';
import { Harness } from './harness';

const BTC = 'BTC_USDT';
let h: Harness;

before(
  async () => {
    h = await Harness.start({ agents: [BTC], recordDeliveries: true });
  },
  { timeout: 240_000 },
);
after(() => h?.stop(), { timeout: 60_000 });

interface Report {
  services: { service: string; incidents: number; restarts: number; alertToRestart: { count: number } }[];
  total: { restarts: number };
}

describe('simulate recorded real alerts', () => {
  it(
    'replays Prometheus’ ALERTS and the recorded webhook deliveries of a real incident',
    { timeout: 420_000 },
    async () => {
      const svc = h.service(BTC);
      await h.systemctl('stop', '--', svc);
      // Really restarted by selfheal, verified, and the alert resolved in Prometheus.
      await h.until(
        async () =>
          h.audit().some((r) => r.service === svc && r.event === 'incident-closed' && r.decision === 'verified'),
        'a verified restart in the live audit log',
        180_000,
      );
      await h.until(
        async () => !(await h.promAlert('ServiceStalled', { service: svc })),
        'ServiceStalled resolved in Prometheus',
        90_000,
      );
      const liveRestarts = h.audit().filter((r) => r.service === svc && r.event === 'restart').length;
      assert.equal(liveRestarts, 1);
      const auditBefore = readFileSync(h.auditFile, 'utf8');
      const startsBefore = h.starts(BTC);

      const fromPrometheus = await runCli(
        ['simulate', '--config', h.configFile, '--from', '30m', '--prometheus', h.promUrl, '--json'],
        { timeoutMs: 180_000 },
      );
      assert.equal(fromPrometheus.code, 0, fromPrometheus.stderr);
      const p = JSON.parse(fromPrometheus.stdout) as Report;
      const ps = p.services.find((s) => s.service === svc);
      assert.ok(ps, `the simulation saw ${svc}: ${fromPrometheus.stdout}`);
      assert.equal(ps.incidents, 1);
      assert.equal(ps.restarts, liveRestarts);

      const fromDeliveries = await runCli(
        ['simulate', '--config', h.configFile, '--alerts', h.deliveriesFile!, '--json'],
        {
          timeoutMs: 180_000,
        },
      );
      assert.equal(fromDeliveries.code, 0, fromDeliveries.stderr);
      const d = JSON.parse(fromDeliveries.stdout) as Report;
      const ds = d.services.find((s) => s.service === svc);
      assert.ok(ds, `the recorded deliveries name ${svc}: ${readFileSync(h.deliveriesFile!, 'utf8')}`);
      assert.equal(ds.restarts, liveRestarts);

      // Nothing live: no restart on the host, nothing in the live audit log.
      assert.equal(h.starts(BTC), startsBefore);
      assert.equal(readFileSync(h.auditFile, 'utf8'), auditBefore);
    },
  );
});
