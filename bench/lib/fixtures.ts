// Realistic inputs: fleet configs of N services and Alertmanager (webhook v4) payloads.
import { join } from 'node:path';
import { parseConfig, type Config } from '../../src/config/config';
import { tempDir as testTempDir } from '../../test/helpers/config';
import type { IncomingAlert } from '../../src/client/alert-intake';

export const TOKEN = 'bench-token-0123456789abcdef';
export const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';

const HOMELAB = [
  'jira-worker.service',
  'crypto-agent@BTC_USDT.service',
  'crypto-agent@ETH_USDT.service',
  'crypto-agent@XRP_USDT.service',
  'crypto-agent@SOL_USDT.service',
  'crypto-agent@DOGE_USDT.service',
  'crypto-agent@ADA_USDT.service',
];

export function tempDir(prefix = 'selfheal-bench-'): string {
  return testTempDir(prefix);
}

export interface FleetService {
  name: string;
  host: string;
}

/** N services: the homelab's seven units first, then numbered units, spread round-robin over the hosts. */
export function fleet(n: number, hosts: readonly string[]): FleetService[] {
  const out: FleetService[] = [];
  for (let i = 0; i < n; i++) {
    const name = i < HOMELAB.length ? HOMELAB[i] : `app-${String(i).padStart(5, '0')}.service`;
    out.push({ name, host: hosts[i % hosts.length] });
  }
  return out;
}

export interface FleetConfigOptions {
  services: readonly FleetService[];
  /** host:port of the Temporal frontend, or omitted for `embedded`. */
  address?: string;
  dataDir?: string;
  /** Extra `policy:` keys (flow YAML, without braces). */
  policy?: string;
  escalationUrl?: string;
  /** Extra top-level YAML lines (e.g. `worker:` or `fleet:` sections). */
  extra?: string[];
  /** `manager:` of every service (default: the config's default, systemd). */
  manager?: string;
}

/** A validated Config, exactly as `selfheal` would load it from YAML. */
export function fleetConfig(opts: FleetConfigOptions): Config {
  const dir = opts.dataDir ?? tempDir();
  return parseConfig(fleetConfigYaml({ ...opts, dataDir: dir }), { source: 'bench-config.yaml', cwd: dir, env: {} });
}

/** The YAML text of fleetConfig(), for a CLI process reading it from a file. */
export function fleetConfigYaml(opts: FleetConfigOptions & { dataDir: string }): string {
  const dir = opts.dataDir;
  const lines = [
    'temporal:',
    `  address: ${opts.address ?? 'embedded'}`,
    `  dataDir: ${JSON.stringify(dir)}`,
    'api:',
    '  listen: 127.0.0.1:0',
    `  token: ${TOKEN}`,
    `  adminToken: ${ADMIN_TOKEN}`,
    `audit: { file: ${JSON.stringify(join(dir, 'audit.log'))} }`,
    ...(opts.escalationUrl ? [`escalation: { webhooks: [ { url: "${opts.escalationUrl}" } ] }`] : []),
    ...(opts.policy ? [`policy: { ${opts.policy} }`] : []),
    ...(opts.extra ?? []),
    'services:',
    ...opts.services.map(
      (s) => `  - { name: "${s.name}", host: ${s.host}${opts.manager ? `, manager: ${opts.manager}` : ''} }`,
    ),
  ];
  return lines.join('\n') + '\n';
}

/** Deterministic PRNG (mulberry32), so every run sees the same inputs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex = (rand: () => number, n: number) =>
  Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join('');

/** One alert as Alertmanager sends it (labels from the shipped rules: service, host, instance, job). */
export function alert(
  rand: () => number,
  p: { service?: string; host?: string; alertname?: string; status?: 'firing' | 'resolved'; instance?: string },
): IncomingAlert & Record<string, unknown> {
  const alertname = p.alertname ?? (rand() < 0.5 ? 'ServiceDown' : 'ServiceStalled');
  const labels: Record<string, string> = { alertname, job: 'node', severity: 'critical' };
  if (p.service !== undefined) labels.service = p.service;
  if (p.host !== undefined) labels.host = p.host;
  labels.instance = p.instance ?? `${p.host ?? 'unknown'}:9100`;
  return {
    status: p.status ?? 'firing',
    labels,
    annotations: {
      summary: `${p.service ?? 'a service'} on ${p.host ?? '?'} ${alertname === 'ServiceStalled' ? 'made no progress for 5m' : 'is down'}`,
      description: 'Detected by monitoring/prometheus/selfhealing_rules.yml; selfheal validates before acting.',
    },
    startsAt: new Date(Date.UTC(2026, 0, 1, 12, 0, Math.floor(rand() * 60))).toISOString(),
    endsAt: '0001-01-01T00:00:00Z',
    generatorURL: `http://prometheus:9090/graph?g0.expr=up%3D%3D0&g0.tab=1&x=${hex(rand, 8)}`,
    fingerprint: hex(rand, 16),
  };
}

/** The webhook v4 envelope around alerts. */
export function envelope(alerts: readonly (IncomingAlert & Record<string, unknown>)[]): Record<string, unknown> {
  return {
    version: '4',
    groupKey: '{}/{severity="critical"}:{alertname="ServiceDown"}',
    truncatedAlerts: 0,
    status: alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
    receiver: 'selfheal',
    groupLabels: { severity: 'critical' },
    commonLabels: { severity: 'critical', job: 'node' },
    commonAnnotations: {},
    externalURL: 'http://alertmanager:9093',
    alerts,
  };
}

/** (a) One firing alert for one configured service. */
export function singleAlertPayload(svc: FleetService, seed: number): Record<string, unknown> {
  return envelope([alert(prng(seed), { service: svc.name, host: svc.host })]);
}

/** (b) One firing alert each for `services` (all configured, all distinct). */
export function distinctAlertsPayload(services: readonly FleetService[], seed: number): Record<string, unknown> {
  const rand = prng(seed);
  return envelope(services.map((s) => alert(rand, { service: s.name, host: s.host })));
}

export interface MixedComposition {
  total: number;
  firingConfigured: number;
  distinctFiring: number;
  resolvedConfigured: number;
  unknownService: number;
  ignoredAlertname: number;
  missingLabels: number;
  shellMetachar: number;
}

/**
 * (c) A 1,000-alert storm, mostly duplicates: 950 firing alerts over 20 configured services (two
 * alert names each, repeated), 10 resolved alerts for other configured services, 30 alerts for
 * services not in the config, 5 about self-healing itself, 4 without a service label and one with a
 * shell-metacharacter unit name. Shuffled deterministically.
 */
export function mixedStormAlerts(
  services: readonly FleetService[],
  seed: number,
): { alerts: (IncomingAlert & Record<string, unknown>)[]; composition: MixedComposition } {
  const rand = prng(seed);
  const firingSet = services.slice(0, 20);
  const resolvedSet = services.slice(20, 30);
  const alerts: (IncomingAlert & Record<string, unknown>)[] = [];
  for (let i = 0; i < 950; i++) {
    const s = firingSet[i % firingSet.length];
    alerts.push(alert(rand, { service: s.name, host: s.host, alertname: i % 2 ? 'ServiceDown' : 'ServiceStalled' }));
  }
  for (const s of resolvedSet) alerts.push(alert(rand, { service: s.name, host: s.host, status: 'resolved' }));
  for (let i = 0; i < 30; i++) alerts.push(alert(rand, { service: `unknown-${i}.service`, host: firingSet[0].host }));
  for (let i = 0; i < 5; i++) {
    alerts.push(
      alert(rand, { service: firingSet[1].name, host: firingSet[1].host, alertname: 'SelfHealingExhausted' }),
    );
  }
  for (let i = 0; i < 4; i++) alerts.push(alert(rand, { host: firingSet[0].host }));
  alerts.push(alert(rand, { service: 'evil;rm -rf /.service', host: firingSet[0].host }));
  for (let i = alerts.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [alerts[i], alerts[j]] = [alerts[j], alerts[i]];
  }
  return {
    alerts,
    composition: {
      total: alerts.length,
      firingConfigured: 950,
      distinctFiring: firingSet.length,
      resolvedConfigured: resolvedSet.length,
      unknownService: 30,
      ignoredAlertname: 5,
      missingLabels: 4,
      shellMetachar: 1,
    },
  };
}
