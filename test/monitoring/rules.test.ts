// monitoring/prometheus/selfhealing_rules.yml: promtool's own checks and unit tests
// (test/monitoring/rules/*.test.yml), plus the structure the routing and the docs rely on.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { isAlias, parseDocument, visit } from 'yaml';
import { allRules, explain, repo, RULES_FILE, run, tool } from './helpers';

const promtool = () => tool('promtool', 'prometheus');

describe('selfhealing_rules.yml', () => {
  it('passes promtool check rules', () => {
    const r = run(promtool(), ['check', 'rules', RULES_FILE]);
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, /SUCCESS: \d+ rules found/);
  });

  it('passes its promtool unit tests (detection, recovery, recording rules, escalation thresholds)', () => {
    const r = run(promtool(), ['test', 'rules', 'test/monitoring/rules/selfhealing_rules.test.yml']);
    assert.equal(r.code, 0, explain(r));
  });

  it('does the opposite of the old rule: silent for a healthy service, firing for a stopped one', () => {
    const r = run(promtool(), ['test', 'rules', 'test/monitoring/rules/old_vs_new.test.yml']);
    assert.equal(r.code, 0, explain(r));
  });

  it('uses no YAML aliases (Prometheus would read an aliased expr as the anchor name)', () => {
    const doc = parseDocument(readFileSync(repo(RULES_FILE), 'utf8'));
    const aliases: string[] = [];
    visit(doc, {
      Alias(_key, node) {
        if (isAlias(node)) aliases.push(node.source);
      },
    });
    assert.deepEqual(aliases, []);
  });

  it('has ServiceStalled for each reason twice: for selfheal (30s) and a same-expression admin copy (10m)', () => {
    const stalled = allRules().filter((r) => r.alert === 'ServiceStalled');
    const byKey = new Map(stalled.map((r) => [`${r.labels?.reason}/${r.labels?.audience}`, r]));
    assert.equal(stalled.length, 6);
    for (const reason of ['down', 'unit-inactive', 'stalled']) {
      const own = byKey.get(`${reason}/selfheal`);
      const admin = byKey.get(`${reason}/admin`);
      assert.ok(own && admin, `missing a ServiceStalled copy for reason ${reason}`);
      assert.equal(own.for, '30s');
      assert.equal(admin.for, '10m');
      assert.equal(admin.expr, own.expr, `admin copy of ${reason} must use the same expression`);
      for (const r of [own, admin]) {
        assert.equal(r.labels?.severity, 'critical');
        assert.ok(r.annotations?.summary && r.annotations.description, `${reason}: summary and description`);
        assert.equal(r.annotations?.runbook_url, 'docs/runbook.md#servicestalled');
      }
    }
  });

  it('defines the recording rules and the escalation alerts with their severities', () => {
    const rules = allRules();
    const records = rules.filter((r) => r.record).map((r) => r.record);
    assert.deepEqual(records.sort(), ['selfhealing:service_health:ratio', 'selfhealing:stall_duration:seconds']);
    const severity = (name: string) => rules.find((r) => r.alert === name)?.labels?.severity;
    assert.equal(severity('SelfHealingExhausted'), 'critical');
    assert.equal(severity('ConsecutiveFailures'), 'critical');
    assert.equal(severity('SelfHealingActive'), 'info');
  });

  it('points every runbook_url at an existing section of docs/runbook.md', () => {
    const runbook = readFileSync(repo('docs/runbook.md'), 'utf8');
    const anchors = new Set(
      [...runbook.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) =>
        m[1]
          .trim()
          .toLowerCase()
          .replace(/[^a-z0-9 _-]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    for (const name of ['servicestalled', 'selfhealingexhausted', 'consecutivefailures']) {
      assert.ok(anchors.has(name), `docs/runbook.md lacks a section for #${name}`);
    }
    for (const rule of allRules().filter((r) => r.alert)) {
      const url = rule.annotations?.runbook_url;
      assert.ok(url, `${rule.alert} has no runbook_url`);
      const [file, anchor] = url.split('#');
      assert.equal(file, 'docs/runbook.md', `${rule.alert}: ${url}`);
      assert.ok(anchors.has(anchor), `${rule.alert}: docs/runbook.md has no section #${anchor}`);
    }
  });
});
