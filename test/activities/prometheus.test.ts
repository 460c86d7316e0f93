// The PromQL that verification sends to Prometheus (`verifyAlertClears`): checked as text, and run
// by Prometheus' own engine (promtool) over ALERTS series, so escaping and the instance fallback are
// proven to select exactly the service's firing alerts.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { firingAlertsQuery, promString } from '../../src/activities/prometheus';
import { explain, run, scratchDir, tool } from '../monitoring/helpers';

const base = {
  host: 'web.1',
  service: 'a.service',
  alertnames: [] as string[],
  ignoreAlertnames: ['SelfHealingExhausted', 'ConsecutiveFailures'],
  serviceLabel: 'service',
  hostLabel: 'host',
};

const series = (labels: Record<string, string>) =>
  `ALERTS{${Object.entries(labels)
    .map(([k, v]) => `${k}=${promString(v)}`)
    .join(',')}}`;

/** Firing unless said otherwise. */
const alert = (labels: Record<string, string>) => ({ alertname: 'ServiceStalled', alertstate: 'firing', ...labels });

/** Asserts, with promtool, that `expr` selects exactly `expected` out of `all` (ALERTS series, value 1). */
function selects(expr: string, all: Record<string, string>[], expected: Record<string, string>[]) {
  const dir = scratchDir('promql-');
  const file = join(dir, 'query.test.yml');
  writeFileSync(
    file,
    stringify({
      rule_files: [],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: all.map((labels) => ({ series: series(labels), values: '1' })),
          promql_expr_test: [
            { expr, eval_time: '0m', exp_samples: expected.map((labels) => ({ labels: series(labels), value: 1 })) },
          ],
        },
      ],
    }),
  );
  const r = run(tool('promtool', 'prometheus'), ['test', 'rules', file]);
  assert.equal(r.code, 0, `${expr}\n${explain(r)}`);
}

describe('promString', () => {
  it('writes a PromQL string literal that reads back as the value', () => {
    assert.equal(promString('a.service'), '"a.service"');
    assert.equal(promString('say "hi" \\ bye'), '"say \\"hi\\" \\\\ bye"');
  });
});

describe('firingAlertsQuery', () => {
  it('asks for firing alerts of the service by host label, or by instance when the alert had no host label', () => {
    assert.equal(
      firingAlertsQuery(base),
      'ALERTS{alertstate="firing",service="a.service",alertname!~"SelfHealingExhausted|ConsecutiveFailures",host="web.1"} or ' +
        'ALERTS{alertstate="firing",service="a.service",alertname!~"SelfHealingExhausted|ConsecutiveFailures",host="",instance=~"web\\\\.1(:[0-9]+)?"}',
    );
  });

  it('selects exactly the firing alerts of that service on that host (Prometheus evaluates it)', () => {
    const mine = [
      alert({ service: 'a.service', host: 'web.1', reason: 'down' }),
      alert({ service: 'a.service', host: 'web.1', reason: 'stalled', alertname: 'SomethingElse' }),
      alert({ service: 'a.service', instance: 'web.1:9100' }),
      alert({ service: 'a.service', instance: 'web.1' }),
    ];
    const others = [
      alert({ service: 'a.service', host: 'web.1', alertstate: 'pending', reason: 'pending' }),
      alert({ service: 'a.service', host: 'web-1' }),
      alert({ service: 'a.service', instance: 'webx1:9100' }), // the dot is literal, not "any character"
      alert({ service: 'a.service', instance: 'web.10:9100' }),
      alert({ service: 'a.service', host: 'other', instance: 'web.1:9100' }), // its host label decides
      alert({ service: 'b.service', host: 'web.1' }),
      alert({ service: 'a.service', host: 'web.1', alertname: 'SelfHealingExhausted' }),
    ];
    selects(firingAlertsQuery(base), [...mine, ...others], mine);
  });

  it('selects only the named alerts when names are given, and ignores the name `manual` (a hand-sent signal)', () => {
    const down = alert({ service: 'a.service', host: 'web.1', alertname: 'ServiceDown' });
    const stalled = alert({ service: 'a.service', host: 'web.1', alertname: 'Service.Stalled' });
    const lookalike = alert({ service: 'a.service', host: 'web.1', alertname: 'ServiceXStalled' });
    const q = firingAlertsQuery({ ...base, alertnames: ['ServiceDown', 'Service.Stalled', 'manual'] });
    assert.doesNotMatch(q, /manual/);
    selects(q, [down, stalled, lookalike], [down, stalled]);
    // Only `manual`: no name filter beyond the ignore list.
    assert.equal(firingAlertsQuery({ ...base, alertnames: ['manual'] }), firingAlertsQuery(base));
  });

  it('uses the configured label names, and no name filter when nothing is ignored', () => {
    const q = firingAlertsQuery({ ...base, serviceLabel: 'unit', hostLabel: 'node', ignoreAlertnames: [] });
    assert.doesNotMatch(q, /alertname/);
    const hit = alert({ unit: 'a.service', node: 'web.1' });
    const byInstance = alert({ unit: 'a.service', instance: 'web.1:9100' });
    selects(q, [hit, byInstance, alert({ service: 'a.service', host: 'web.1' })], [hit, byInstance]);
  });
});
