// grafana/dashboards/eddie-auto-dev-central.json: the two headline panels as the design fixes them,
// and every PromQL expression in it evaluated by promtool on synthetic series (with the shipped
// recording rules loaded) and checked to read only metrics that exist.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { allRules, explain, readYaml, repo, RULES_FILE, run, scratchDir, tool } from './helpers';
import { metricNames, substituteGrafanaVariables } from './promql';

interface Target {
  refId: string;
  expr?: string;
  datasource?: { type: string; uid: string };
  legendFormat?: string;
}
interface Mapping {
  type: string;
  options: Record<string, { text: string; color?: string; index?: number }>;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  timeFrom?: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
  fieldConfig?: {
    defaults: {
      min?: number;
      max?: number;
      thresholds?: { mode: string; steps: { color: string; value: number | null }[] };
      mappings?: Mapping[];
    };
  };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
}

const DASHBOARD = 'grafana/dashboards/eddie-auto-dev-central.json';
const dashboard = (): Dashboard => JSON.parse(readFileSync(repo(DASHBOARD), 'utf8')) as Dashboard;
const allPanels = (panels: Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
const panel = (title: string): Panel => {
  const p = allPanels(dashboard().panels).find((x) => x.title === title);
  assert.ok(p, `no panel titled ${title}`);
  return p;
};
const targets = (): { panel: string; target: Target; expr: string }[] =>
  allPanels(dashboard().panels).flatMap((p) =>
    (p.targets ?? []).map((target) => {
      assert.ok(target.expr, `panel "${p.title}" target ${target.refId} has no expr`);
      return { panel: p.title, target, expr: target.expr };
    }),
  );

const STATUS_MAPPINGS = {
  '0': { text: 'OK', color: 'green' },
  '1': { text: 'HEALING', color: 'orange' },
  '2': { text: 'CRITICAL', color: 'red' },
};
const statusMappings = (p: Panel) =>
  Object.fromEntries(
    Object.entries(p.fieldConfig?.defaults.mappings?.find((m) => m.type === 'value')?.options ?? {}).map(([k, v]) => [
      k,
      { text: v.text, color: v.color },
    ]),
  );

describe('Eddie Auto Dev Central dashboard: layout', () => {
  it('is the Grafana 10 dashboard with the fixed uid and title', () => {
    const d = dashboard();
    assert.equal(d.uid, 'eddie-auto-dev-central');
    assert.equal(d.title, 'Eddie Auto Dev Central');
    assert.ok(d.schemaVersion >= 36 && d.schemaVersion <= 39, `schemaVersion ${d.schemaVersion} is not Grafana 10`);
  });

  it('shows the worst status in the "Self-Healing Status" gauge at x=0,y=0, green/orange/red at 0/1/2', () => {
    const p = panel('Self-Healing Status');
    assert.equal(p.type, 'gauge');
    assert.deepEqual(p.gridPos, { x: 0, y: 0, w: 12, h: 8 });
    assert.deepEqual(
      p.targets?.map((t) => t.expr),
      ['max(selfhealing_service_status)'],
    );
    assert.equal(p.fieldConfig?.defaults.min, 0);
    assert.equal(p.fieldConfig?.defaults.max, 2);
    assert.deepEqual(p.fieldConfig?.defaults.thresholds, {
      mode: 'absolute',
      steps: [
        { color: 'green', value: null },
        { color: 'orange', value: 1 },
        { color: 'red', value: 2 },
      ],
    });
    assert.deepEqual(statusMappings(p), STATUS_MAPPINGS);
  });

  it('shows per-service status over 5 minutes in "Service Stall History (5m)" at x=12,y=0', () => {
    const p = panel('Service Stall History (5m)');
    assert.equal(p.type, 'state-timeline');
    assert.deepEqual(p.gridPos, { x: 12, y: 0, w: 12, h: 8 });
    assert.equal(p.timeFrom, '5m');
    const status = p.targets?.find((t) => t.expr === 'selfhealing_service_status');
    assert.ok(status, 'no selfhealing_service_status target');
    assert.equal(status.legendFormat, '{{service}}');
    assert.ok(
      p.targets?.some((t) => t.expr?.includes('ALERTS{') && t.expr.includes('ServiceStalled')),
      'no stall-event target',
    );
    assert.deepEqual(statusMappings(p), STATUS_MAPPINGS);
  });

  it('has the restarts, escalations, state table, health ratio and stall duration panels', () => {
    const exprs = targets().map((t) => t.expr);
    for (const expected of [
      'sum by (service, result) (increase(selfhealing_restarts_total[$__rate_interval]))',
      'selfhealing:service_health:ratio',
      'selfhealing:stall_duration:seconds',
    ]) {
      assert.ok(exprs.includes(expected), `no panel queries ${expected}`);
    }
    assert.ok(exprs.some((e) => e.includes('selfhealing_escalations_total')));
    const table = panel('Service state');
    assert.equal(table.type, 'table');
    const tableExprs = (table.targets ?? []).map((t) => t.expr ?? '');
    for (const m of [
      'selfhealing_service_status',
      'selfhealing_consecutive_failures',
      'selfhealing_restarts_last_hour',
    ]) {
      assert.ok(
        tableExprs.some((e) => e.includes(m)),
        `the state table does not show ${m}`,
      );
    }
  });

  it('has a "Fleet safety" row: breaker per scope (closed/half-open/open), held incidents by reason, restarts in flight, MassFailure and ServiceFlapping', () => {
    const d = dashboard();
    const row = d.panels.findIndex((p) => p.type === 'row' && p.title === 'Fleet safety');
    assert.ok(row >= 0, 'no "Fleet safety" row');
    const below = d.panels.slice(row + 1);
    const exprsOf = (title: string) => (below.find((p) => p.title === title)?.targets ?? []).map((t) => t.expr);
    assert.deepEqual(exprsOf('Mass-failure breaker'), ['max by (scope) (selfhealing_breaker_open)']);
    assert.deepEqual(statusMappings(panel('Mass-failure breaker')), {
      '0': { text: 'CLOSED', color: 'green' },
      '0.5': { text: 'HALF-OPEN', color: 'orange' },
      '1': { text: 'OPEN', color: 'red' },
    });
    assert.deepEqual(exprsOf('Held incidents'), ['sum by (reason) (selfhealing_held_incidents)']);
    assert.deepEqual(exprsOf('Restarts in flight'), ['max(selfhealing_restarts_in_flight)']);
    assert.ok(
      exprsOf('Fleet escalations').some((e) => e?.includes('MassFailure') && e.includes('ServiceFlapping')),
      'no panel counts MassFailure and ServiceFlapping escalations',
    );
    for (const p of below) assert.ok(p.gridPos.y > d.panels[row].gridPos.y, `${p.title} is not below the row`);
  });

  it('has a Prometheus datasource variable that defaults to the provisioned uid, so import can pick another', () => {
    const d = dashboard() as unknown as {
      templating: { list: { name: string; type: string; query: string; current?: { value?: string } }[] };
    };
    const v = d.templating.list.find((x) => x.type === 'datasource');
    assert.ok(v, 'no datasource variable in templating.list');
    assert.equal(v.name, 'datasource');
    assert.equal(v.query, 'prometheus', 'it lists Prometheus datasources');
    const provisioned = readYaml<{ datasources: { uid: string }[] }>('grafana/provisioning/datasources/prometheus.yml');
    assert.equal(v.current?.value, provisioned.datasources[0].uid, 'defaults to the provisioned datasource');
  });

  it('queries the datasource variable everywhere and lays panels out without overlap', () => {
    const panels = allPanels(dashboard().panels);
    assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids must be unique');
    for (const p of panels) {
      assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, p.title);
      for (const t of p.targets ?? [])
        assert.deepEqual(t.datasource, { type: 'prometheus', uid: '${datasource}' }, p.title);
      assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} is wider than the grid`);
    }
    for (const a of panels) {
      for (const b of panels) {
        if (a.id >= b.id) continue;
        const overlap =
          a.gridPos.x < b.gridPos.x + b.gridPos.w &&
          b.gridPos.x < a.gridPos.x + a.gridPos.w &&
          a.gridPos.y < b.gridPos.y + b.gridPos.h &&
          b.gridPos.y < a.gridPos.y + a.gridPos.h;
        assert.ok(!overlap, `"${a.title}" overlaps "${b.title}"`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('metricNames (PromQL identifier extraction)', () => {
  it('skips functions, aggregations, keywords, label names, strings, durations and numbers', () => {
    assert.deepEqual(
      metricNames(
        'sum by (service, result) (increase(foo_total{a="b", c=~"x{1}|y"}[5m] offset 1h)) > bool 3 ' +
          'and on (host) group_left (le) bar:ratio or label_replace(baz, "service", "$1", "name", "(.+)") * 1e3 unless qux[5m:30s] @ start()',
      ),
      ['bar:ratio', 'baz', 'foo_total', 'qux'],
    );
    assert.deepEqual(metricNames('max(selfhealing_service_status) without (instance)'), ['selfhealing_service_status']);
  });
});

/** Names a dashboard expression may read. */
function allowedMetrics(): Set<string> {
  const product = readFileSync(repo('monitoring/product-metrics.txt'), 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean)
    .map((l) => l.split(/\s+/)[0]);
  const recorded = allRules().flatMap((r) => (r.record ? [r.record] : []));
  return new Set([
    ...product,
    ...recorded,
    'up',
    'node_systemd_unit_state',
    'service_last_progress_timestamp_seconds',
    'ALERTS',
  ]);
}

// Synthetic state at 10m: four guarded services on host homelab.
//   jira-worker   OK, progressing
//   BTC           HEALING since 5m30s, progress frozen since 3m (ServiceStalled firing), 1 successful restart at 7m30s
//   ETH           CRITICAL, 3 consecutive failures, budget exhausted, failed restarts at 5m30s and 8m30s, one escalation
//   XRP           OK
const J = 'jira-worker.service';
const B = 'crypto-agent@BTC_USDT.service';
const E = 'crypto-agent@ETH_USDT.service';
const X = 'crypto-agent@XRP_USDT.service';
const SELFHEAL = 'job="selfheal", instance="127.0.0.1:5000"';
const sel = (service: string) => `${SELFHEAL}, host="homelab", service="${service}"`;
const perService = (metric: string, values: Record<string, string>) =>
  Object.entries(values).map(([service, v]) => ({ series: `${metric}{${sel(service)}}`, values: v }));

const INPUT_SERIES = [
  ...perService('selfhealing_service_status', { [J]: '0x40', [B]: '0x10 1x30', [E]: '2x40', [X]: '0x40' }),
  ...perService('selfhealing_consecutive_failures', { [J]: '0x40', [B]: '1x40', [E]: '3x40', [X]: '0x40' }),
  ...perService('selfhealing_restarts_last_hour', { [J]: '0x40', [B]: '1x40', [E]: '3x40', [X]: '0x40' }),
  ...perService('selfhealing_budget_exhausted', { [J]: '0x40', [B]: '0x40', [E]: '1x40', [X]: '0x40' }),
  ...[J, B, E, X].flatMap((s) => [
    { series: `selfhealing_restarts_total{${sel(s)}, result="success"}`, values: s === B ? '0x14 1x25' : '0x40' },
    {
      series: `selfhealing_restarts_total{${sel(s)}, result="failure"}`,
      values: s === E ? '0x10 1x5 2x5 3x19' : '0x40',
    },
  ]),
  { series: `selfhealing_escalations_total{${sel(J)}, reason="ConsecutiveFailures"}`, values: '0x40' },
  { series: `selfhealing_escalations_total{${sel(E)}, reason="ConsecutiveFailures"}`, values: '0x12 1x27' },
  { series: `selfhealing_escalations_total{${sel(E)}, reason="SelfHealingExhausted"}`, values: '0x40' },
  { series: `selfhealing_alerts_received_total{${SELFHEAL}, status="firing"}`, values: '0+1x40' },
  { series: `selfhealing_alerts_received_total{${SELFHEAL}, status="resolved"}`, values: '0x40' },
  { series: `selfhealing_alerts_ignored_total{${SELFHEAL}, reason="unknown-service"}`, values: '0x15 1x24' },
  { series: `up{${SELFHEAL}}`, values: '1x40' },
  // Fleet safety: the host's breaker tripped at 7m (2 incidents held), the fleet's stayed closed.
  { series: `selfhealing_breaker_open{${SELFHEAL}, scope="fleet"}`, values: '0x40' },
  { series: `selfhealing_breaker_open{${SELFHEAL}, scope="host:homelab"}`, values: '0x14 1x25' },
  { series: `selfhealing_held_incidents{${SELFHEAL}, reason="breaker"}`, values: '0x14 2x25' },
  { series: `selfhealing_held_incidents{${SELFHEAL}, reason="silenced"}`, values: '0x40' },
  { series: `selfhealing_restarts_in_flight{${SELFHEAL}}`, values: '0x40' },
  {
    series: `selfhealing_escalations_total{${SELFHEAL}, host="homelab", service="*", reason="MassFailure"}`,
    values: '0x14 1x25',
  },
  { series: `selfhealing_escalations_total{${sel(J)}, reason="ServiceFlapping"}`, values: '0x40' },
  { series: `selfhealing_temporal_up{${SELFHEAL}}`, values: '1x40' },
  {
    series: `service_last_progress_timestamp_seconds{job="jira-worker", instance="127.0.0.1:9107", host="homelab", service="${J}"}`,
    values: '0+30x40',
  },
  {
    series: `service_last_progress_timestamp_seconds{job="crypto-agent", instance="127.0.0.1:9101", host="homelab", service="${B}"}`,
    values: '0+30x6 180x33',
  },
];

type Sample = { labels: string; value: number };
const svc = (service: string, extra = '') => `{host="homelab", service="${service}"${extra}}`;
const byService = (values: Record<string, number>): Sample[] =>
  Object.entries(values).map(([s, value]) => ({ labels: svc(s), value }));

/** What each dashboard expression (Grafana variables replaced) returns at 10m on INPUT_SERIES. */
const EXPECTED: Record<string, Sample[]> = {
  'max(selfhealing_service_status)': [{ labels: '{}', value: 2 }],
  selfhealing_service_status: [J, B, E, X].map((s, i) => ({
    labels: `selfhealing_service_status{${sel(s)}}`,
    value: [0, 1, 2, 0][i],
  })),
  'max by (service) (ALERTS{alertname="ServiceStalled", audience="selfheal", alertstate="firing"})': [
    { labels: `{service="${B}"}`, value: 1 },
  ],
  'selfhealing:service_health:ratio': [{ labels: 'selfhealing:service_health:ratio', value: 0.5 }],
  'selfhealing:stall_duration:seconds': [
    { labels: `selfhealing:stall_duration:seconds${svc(J)}`, value: 0 },
    { labels: `selfhealing:stall_duration:seconds${svc(B)}`, value: 420 },
  ],
  'sum by (service, result) (increase(selfhealing_restarts_total[5m]))': [J, B, E, X].flatMap((s) => [
    { labels: `{service="${s}", result="success"}`, value: s === B ? 1 : 0 },
    { labels: `{service="${s}", result="failure"}`, value: s === E ? 2 : 0 },
  ]),
  'sum by (service, reason) (increase(selfhealing_escalations_total[5m]))': [
    { labels: `{service="${J}", reason="ConsecutiveFailures"}`, value: 0 },
    { labels: `{service="${E}", reason="ConsecutiveFailures"}`, value: 1 },
    { labels: `{service="${E}", reason="SelfHealingExhausted"}`, value: 0 },
    // The fleet coordinator's escalation names no single service.
    { labels: '{service="*", reason="MassFailure"}', value: 1 },
    { labels: `{service="${J}", reason="ServiceFlapping"}`, value: 0 },
  ],
  'max by (host, service) (selfhealing_service_status)': byService({ [J]: 0, [B]: 1, [E]: 2, [X]: 0 }),
  'max by (host, service) (selfhealing_consecutive_failures)': byService({ [J]: 0, [B]: 1, [E]: 3, [X]: 0 }),
  'max by (host, service) (selfhealing_restarts_last_hour)': byService({ [J]: 0, [B]: 1, [E]: 3, [X]: 0 }),
  'max by (host, service) (selfhealing_budget_exhausted)': byService({ [J]: 0, [B]: 0, [E]: 1, [X]: 0 }),
  'sum by (status) (increase(selfhealing_alerts_received_total[5m]))': [
    { labels: '{status="firing"}', value: 10 },
    { labels: '{status="resolved"}', value: 0 },
  ],
  'sum by (reason) (increase(selfhealing_alerts_ignored_total[5m]))': [
    { labels: '{reason="unknown-service"}', value: 1 },
  ],
  'min(up{job="selfheal"})': [{ labels: '{}', value: 1 }],
  'min(selfhealing_temporal_up)': [{ labels: '{}', value: 1 }],
  'max by (scope) (selfhealing_breaker_open)': [
    { labels: '{scope="fleet"}', value: 0 },
    { labels: '{scope="host:homelab"}', value: 1 },
  ],
  'sum by (reason) (selfhealing_held_incidents)': [
    { labels: '{reason="breaker"}', value: 2 },
    { labels: '{reason="silenced"}', value: 0 },
  ],
  'max(selfhealing_restarts_in_flight)': [{ labels: '{}', value: 0 }],
  'sum by (reason) (increase(selfhealing_escalations_total{reason=~"MassFailure|ServiceFlapping"}[10m]))': [
    { labels: '{reason="MassFailure"}', value: 1 },
    { labels: '{reason="ServiceFlapping"}', value: 0 },
  ],
};

describe('Eddie Auto Dev Central dashboard: queries', () => {
  it('reads only product metrics, recording rules and the watched services series', () => {
    const allowed = allowedMetrics();
    for (const { panel: title, expr } of targets()) {
      const unknown = metricNames(substituteGrafanaVariables(expr)).filter((m) => !allowed.has(m));
      assert.deepEqual(unknown, [], `panel "${title}" queries unknown metrics: ${expr}`);
    }
  });

  it('every query returns the expected series and values on synthetic data (promtool)', () => {
    const exprs = [...new Set(targets().map((t) => substituteGrafanaVariables(t.expr)))];
    const missing = exprs.filter((e) => !(e in EXPECTED));
    assert.deepEqual(missing, [], 'add the expected result of these dashboard queries to EXPECTED');
    const dir = scratchDir('selfheal-dashboard-');
    const file = join(dir, 'dashboard.test.yml');
    writeFileSync(
      file,
      stringify({
        rule_files: [repo(RULES_FILE)],
        evaluation_interval: '30s',
        tests: [
          {
            name: 'dashboard queries',
            interval: '30s',
            input_series: INPUT_SERIES,
            promql_expr_test: exprs.map((expr) => ({ expr, eval_time: '10m', exp_samples: EXPECTED[expr] })),
          },
        ],
      }),
    );
    const r = run(tool('promtool', 'prometheus'), ['test', 'rules', file]);
    assert.equal(r.code, 0, explain(r));
  });
});
