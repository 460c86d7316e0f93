// docker-compose.yml (checked by parsing: no Docker engine here), the compose-only Prometheus
// config and selfheal config, the Dockerfile and the Grafana provisioning it mounts.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/config';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/definitions';
import {
  exampleServices,
  explain,
  type PrometheusConfig,
  readYaml,
  repo,
  ROOT,
  run,
  scratchDir,
  tool,
} from './helpers';

interface ComposeService {
  image?: string;
  extra_hosts?: string[];
  build?: { context: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  network_mode?: string;
  ports?: string[];
  depends_on?: Record<string, unknown>;
}
interface Compose {
  services: Record<string, ComposeService>;
}

const ENV = {
  SELFHEAL_TOKEN: 'compose-test-token-0123456789',
  SELFHEAL_ADMIN_TOKEN: 'compose-test-admin-0123456789',
  GRAFANA_ADMIN_PASSWORD: 'compose-test-password',
};
// Only what compose needs, so a SELFHEAL_TOKEN in the caller's environment cannot leak in.
const composeEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, ...extra });

let resolved: Compose | undefined;
/** `docker-compose config`: the file as Compose itself resolves it (absolute bind paths). */
function compose(): Compose {
  resolved ??= composeWith({});
  return resolved;
}

/** `docker-compose config` with extra variables in its environment. */
function composeWith(extra: Record<string, string>): Compose {
  const r = run(tool('docker-compose', 'docker-compose'), ['-f', 'docker-compose.yml', 'config'], {
    env: composeEnv({ ...ENV, ...extra }),
  });
  assert.equal(r.code, 0, explain(r));
  return parse(r.stdout) as Compose;
}

/** The selfheal config a container of the stack loads: the mounted file, with that container's environment. */
function containerConfig(c: Compose, service: string) {
  const s = c.services[service];
  const file = repo(hostPathOf(service, s.environment?.SELFHEAL_CONFIG ?? '') ?? '');
  return parseConfig(readFileSync(file, 'utf8'), { source: file, cwd: '/', env: s.environment ?? {} });
}

/** Bind mounts of a service as container path -> path relative to the repo. */
function binds(service: string): Map<string, string> {
  const s = compose().services[service];
  assert.ok(s, `no service ${service}`);
  const out = new Map<string, string>();
  for (const v of s.volumes ?? []) {
    const [src, dst] = v.split(':');
    if (src.startsWith('/')) out.set(dst, relative(ROOT, src));
  }
  return out;
}

/** Which repo file a container path reads, through the service's bind mounts. */
function hostPathOf(service: string, containerPath: string): string | undefined {
  for (const [dst, src] of binds(service)) {
    if (containerPath === dst) return src;
    if (containerPath.startsWith(dst + '/')) return join(src, containerPath.slice(dst.length + 1));
  }
  return undefined;
}

describe('docker-compose.yml', () => {
  it('passes docker-compose config, and refuses to resolve without the tokens', () => {
    assert.ok(compose().services);
    const r = run(tool('docker-compose', 'docker-compose'), ['-f', 'docker-compose.yml', 'config'], {
      env: composeEnv(),
    });
    assert.notEqual(r.code, 0, 'docker-compose config must fail without SELFHEAL_TOKEN');
    assert.match(r.stderr, /SELFHEAL_TOKEN/);
  });

  it('has the whole central stack', () => {
    const names = Object.keys(compose().services).sort();
    for (const s of [
      'alertmanager',
      'grafana',
      'postgresql',
      'prometheus',
      'selfheal-api',
      'selfheal-worker',
      'temporal',
      'temporal-admin-tools',
      'temporal-ui',
    ]) {
      assert.ok(names.includes(s), `no ${s} service`);
    }
    const { services } = compose();
    assert.match(services.postgresql.image ?? '', /^postgres:16/);
    assert.match(services.temporal.image ?? '', /^temporalio\/auto-setup:/);
    assert.equal(services.temporal.environment?.DB, 'postgres12');
    assert.equal(services.temporal.environment?.POSTGRES_SEEDS, 'postgresql');
    assert.ok(services.temporal.depends_on && 'postgresql' in services.temporal.depends_on);
    assert.match(services['temporal-ui'].image ?? '', /^temporalio\/ui:/);
    assert.ok(services['temporal-ui'].ports?.some((p) => p.endsWith(':8080/tcp') || p.endsWith(':8080')));
  });

  it('registers every search attribute the workflows use, with its type', () => {
    const script = (compose().services['temporal-admin-tools'].command ?? []).join('\n');
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
      assert.ok(script.includes(`${name}:${type}`), `temporal-admin-tools does not register ${name} (${type})`);
    }
    assert.match(script, /temporal operator search-attribute create/);
  });

  it('runs the API and the control worker from the Dockerfile with the shipped config', () => {
    const { services } = compose();
    assert.deepEqual(services['selfheal-api'].command, ['api']);
    assert.deepEqual(services['selfheal-worker'].command, ['worker', '--control']);
    for (const name of ['selfheal-api', 'selfheal-worker']) {
      const s = services[name];
      assert.equal(s.build?.context, ROOT);
      const configPath = s.environment?.SELFHEAL_CONFIG;
      assert.ok(configPath, `${name}: SELFHEAL_CONFIG is not set`);
      assert.equal(hostPathOf(name, configPath), 'deploy/docker/selfheal.yaml');
      assert.equal(s.environment?.SELFHEAL_TOKEN, ENV.SELFHEAL_TOKEN);
    }
    const dockerfile = readFileSync(repo('Dockerfile'), 'utf8');
    assert.match(dockerfile, /^FROM node:20-bookworm-slim/m);
    assert.match(dockerfile, /^RUN npm ci$/m);
    assert.match(dockerfile, /npm run build/);
    assert.match(dockerfile, /^ENTRYPOINT \["node", "bin\/selfheal\.js"\]$/m);
  });

  it('mounts the shipped Prometheus config and rules so that rule_files resolve', () => {
    const configPath = '/etc/prometheus/prometheus.yml';
    assert.ok(compose().services.prometheus.command?.includes(`--config.file=${configPath}`));
    const configFile = hostPathOf('prometheus', configPath);
    assert.equal(configFile, 'deploy/docker/prometheus.yml');
    const config = readYaml<PrometheusConfig>(configFile);
    for (const rf of config.rule_files) {
      const hostFile = hostPathOf('prometheus', posix.join(posix.dirname(configPath), rf));
      assert.equal(hostFile, 'monitoring/prometheus/selfhealing_rules.yml', `rule file ${rf}`);
    }
    for (const v of compose().services.prometheus.volumes ?? []) {
      if (v.startsWith('/')) assert.ok(v.endsWith(':ro'), `${v} should be read-only`);
    }
  });

  it('mounts the compose alertmanager.yml and the bearer token file it names', () => {
    const configPath = '/etc/alertmanager/alertmanager.yml';
    assert.ok(compose().services.alertmanager.command?.includes(`--config.file=${configPath}`));
    assert.equal(hostPathOf('alertmanager', configPath), 'deploy/docker/alertmanager.yml');
    const am = readYaml<{
      receivers: {
        name: string;
        webhook_configs?: { http_config?: { authorization?: { credentials_file?: string } } }[];
      }[];
    }>('deploy/docker/alertmanager.yml');
    const tokenPath = am.receivers.find((r) => r.name === 'selfheal')?.webhook_configs?.[0].http_config?.authorization
      ?.credentials_file;
    assert.ok(tokenPath);
    assert.ok(hostPathOf('alertmanager', tokenPath), `nothing is mounted at ${tokenPath}`);
  });

  it('shares one network namespace so the shipped 127.0.0.1 addresses hold', () => {
    const { services } = compose();
    for (const s of ['selfheal-worker', 'prometheus', 'alertmanager']) {
      assert.equal(services[s].network_mode, 'service:selfheal-api', s);
    }
    const published = (services['selfheal-api'].ports ?? []).join(' ');
    for (const port of ['5000', '9090', '9093']) assert.match(published, new RegExp(`127\\.0\\.0\\.1:${port}:${port}`));
  });

  it("sends Alertmanager's notifications only to addresses something answers on", () => {
    // Prometheus, Alertmanager, the API and the control worker share selfheal-api's network
    // namespace: on 127.0.0.1 only their own ports answer. Anything else must be another address.
    const { services } = compose();
    const configFile = hostPathOf('alertmanager', '/etc/alertmanager/alertmanager.yml');
    assert.ok(configFile);
    const api = containerConfig(compose(), 'selfheal-api');
    const worker = containerConfig(compose(), 'selfheal-worker');
    const local = new Set([api.api.port, 9090, 9093, worker.worker.metricsListen, worker.worker.temporalMetricsListen]);
    const am = readYaml<{ receivers: { name: string; webhook_configs?: { url: string }[] }[] }>(configFile);
    for (const r of am.receivers) {
      for (const w of r.webhook_configs ?? []) {
        const u = new URL(w.url);
        if (u.hostname === '127.0.0.1' || u.hostname === 'localhost') {
          const port = Number(u.port || 80);
          assert.ok(
            [...local].some((l) => l === port || (typeof l === 'string' && l.endsWith(`:${port}`))),
            `receiver ${r.name} posts to ${w.url}, but nothing in the shared namespace listens on port ${port}`,
          );
        } else if (u.hostname === 'host.docker.internal') {
          assert.ok(
            services['selfheal-api'].extra_hosts?.some((h) => h.startsWith('host.docker.internal:')),
            `receiver ${r.name}: host.docker.internal is not mapped`,
          );
        } else {
          assert.ok(u.hostname in services, `receiver ${r.name}: ${u.hostname} is not a service of the stack`);
        }
      }
    }
  });

  it('passes SELFHEAL_ESCALATION_URL to the containers, so escalations go where the operator says', () => {
    const url = 'http://pager.example.org:8080/selfheal';
    const withUrl = composeWith({ SELFHEAL_ESCALATION_URL: url });
    for (const name of ['selfheal-api', 'selfheal-worker']) {
      assert.deepEqual(
        containerConfig(withUrl, name).escalation.webhooks.map((w) => w.url),
        [url],
        `${name} escalates to SELFHEAL_ESCALATION_URL`,
      );
    }
    // Unset: the escalation receiver on the docker host.
    assert.deepEqual(
      containerConfig(compose(), 'selfheal-worker').escalation.webhooks.map((w) => w.url),
      ['http://host.docker.internal:9099/escalations'],
    );
  });

  it('publishes Temporal on loopback by default, and on the address remote host workers use when set', () => {
    const published = (c: Compose) => c.services.temporal.ports?.map((p) => p.replace(/\/tcp$/, ''));
    assert.deepEqual(published(compose()), ['127.0.0.1:7233:7233']);
    assert.deepEqual(published(composeWith({ TEMPORAL_PUBLISH_ADDRESS: '10.8.0.1' })), ['10.8.0.1:7233:7233']);
  });

  it('mounts the Grafana provisioning and the dashboards where the provider looks', () => {
    assert.equal(hostPathOf('grafana', '/etc/grafana/provisioning'), 'grafana/provisioning');
    const provider = readYaml<{ providers: { type: string; options: { path: string } }[] }>(
      'grafana/provisioning/dashboards/selfheal.yml',
    ).providers[0];
    assert.equal(provider.type, 'file');
    assert.equal(provider.options.path, '/var/lib/grafana/dashboards');
    const dashboard = hostPathOf('grafana', `${provider.options.path}/eddie-auto-dev-central.json`);
    assert.equal(dashboard, 'grafana/dashboards/eddie-auto-dev-central.json');
    assert.ok(existsSync(repo(dashboard)));
    const ds = readYaml<{ datasources: { uid: string; type: string; url: string }[] }>(
      'grafana/provisioning/datasources/prometheus.yml',
    ).datasources[0];
    assert.deepEqual([ds.uid, ds.type, ds.url], ['prometheus', 'prometheus', 'http://prometheus:9090']);
  });
});

describe('deploy/docker/prometheus.yml', () => {
  it('is monitoring/prometheus.yml with only the watched targets moved to host.docker.internal', () => {
    const host = readYaml<PrometheusConfig>('monitoring/prometheus.yml');
    const text = readFileSync(repo('deploy/docker/prometheus.yml'), 'utf8');
    assert.match(text, /host\.docker\.internal/);
    assert.deepEqual(parse(text.replaceAll('host.docker.internal', '127.0.0.1')), host);
  });

  it('passes promtool check config with the rules mounted as in compose', () => {
    const dir = scratchDir('selfheal-compose-prom-');
    writeFileSync(join(dir, 'prometheus.yml'), readFileSync(repo('deploy/docker/prometheus.yml')));
    symlinkSync(repo('monitoring/prometheus'), join(dir, 'prometheus'));
    const r = run(tool('promtool', 'prometheus'), ['check', 'config', join(dir, 'prometheus.yml')]);
    assert.equal(r.code, 0, explain(r));
  });
});

describe('deploy/docker/alertmanager.yml', () => {
  it('is monitoring/alertmanager.yml with only the admin receiver moved to the docker host', () => {
    const host = readYaml<unknown>('monitoring/alertmanager.yml');
    const text = readFileSync(repo('deploy/docker/alertmanager.yml'), 'utf8');
    assert.match(text, /http:\/\/host\.docker\.internal:9099\/admin/);
    assert.deepEqual(parse(text.replaceAll('host.docker.internal:9099', '127.0.0.1:9099')), host);
  });

  it('passes amtool check-config', () => {
    const r = run(tool('amtool', 'prometheus-alertmanager'), ['check-config', repo('deploy/docker/alertmanager.yml')]);
    assert.equal(r.code, 0, explain(r));
  });
});

describe('deploy/docker/selfheal.yaml', () => {
  it('is a valid selfheal config for the compose network, with the homelab services', () => {
    const file = repo('deploy/docker/selfheal.yaml');
    const config = parseConfig(readFileSync(file, 'utf8'), { source: file, cwd: dirname(file), env: ENV });
    assert.equal(config.temporal.address, 'temporal:7233');
    assert.equal(config.api.listen, '0.0.0.0:5000');
    assert.equal(config.api.token, ENV.SELFHEAL_TOKEN);
    assert.equal(config.api.adminToken, ENV.SELFHEAL_ADMIN_TOKEN);
    assert.equal(config.prometheus.url, 'http://prometheus:9090');
    // SelfHealingActive fires for every service being healed: it must never count as a reason to heal.
    assert.ok(config.alerts.ignoreAlertnames.includes('SelfHealingActive'));
    assert.deepEqual(
      config.services.map((s) => `${s.host}/${s.name}`),
      exampleServices().map((s) => `${s.host}/${s.name}`),
    );
  });

  it('refuses to load without the tokens from the environment', () => {
    const file = repo('deploy/docker/selfheal.yaml');
    assert.throws(
      () => parseConfig(readFileSync(file, 'utf8'), { source: file, cwd: dirname(file), env: {} }),
      /SELFHEAL_TOKEN/,
    );
  });
});
