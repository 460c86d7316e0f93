// monitoring/prometheus.yml: valid for promtool, and its targets carry what the rules key on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exampleServices, explain, readYaml, repo, run, tool, type PrometheusConfig } from './helpers';

const config = () => readYaml<PrometheusConfig>('monitoring/prometheus.yml');
const job = (name: string) => config().scrape_configs.find((j) => j.job_name === name);

describe('monitoring/prometheus.yml', () => {
  it('passes promtool check config, including its rule file', () => {
    // rule_files resolve relative to the config file's folder.
    const r = run(tool('promtool', 'prometheus'), ['check', 'config', 'prometheus.yml'], { cwd: repo('monitoring') });
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, /SUCCESS: 1 rule files found/);
  });

  it('evaluates every 30 s, loads the selfheal rules and sends alerts to the local Alertmanager', () => {
    const c = config();
    assert.equal(c.global.scrape_interval, '30s');
    assert.equal(c.global.evaluation_interval, '30s');
    assert.deepEqual(c.rule_files, ['prometheus/selfhealing_rules.yml']);
    assert.deepEqual(c.alerting.alertmanagers[0].static_configs[0].targets, ['127.0.0.1:9093']);
  });

  it('scrapes selfheal, its worker and node_exporter (with a host label)', () => {
    assert.deepEqual(job('selfheal')?.static_configs[0].targets, ['127.0.0.1:5000']);
    assert.equal(job('selfheal')?.metrics_path, '/metrics');
    assert.deepEqual(job('selfheal-worker')?.static_configs[0].targets, ['127.0.0.1:9464']);
    const node = job('node')?.static_configs[0];
    assert.deepEqual(node?.targets, ['127.0.0.1:9100']);
    assert.equal(node?.labels?.host, 'homelab');
  });

  it('has one target with host and service labels for every service of the homelab example', () => {
    const targets = config().scrape_configs.flatMap((j) => j.static_configs.filter((s) => s.labels?.service));
    const labelled = targets.map((t) => `${t.labels?.host}/${t.labels?.service}`).sort();
    assert.deepEqual(
      labelled,
      exampleServices()
        .map((s) => `${s.host}/${s.name}`)
        .sort(),
    );
    const addresses = targets.flatMap((t) => t.targets);
    assert.equal(new Set(addresses).size, addresses.length, 'two services share a target address');
    const crypto = job('crypto-agent')?.static_configs ?? [];
    assert.equal(crypto.length, 6);
    assert.deepEqual(
      crypto.map((s) => s.targets[0]),
      ['9101', '9102', '9103', '9104', '9105', '9106'].map((p) => `127.0.0.1:${p}`),
    );
  });
});
