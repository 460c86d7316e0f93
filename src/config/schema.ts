// The configuration file's keys, section by section, with their defaults and checks. A key is
// added here, once: the section's type (and so Config) follows from its table.
import { DEFAULT_FLAPPING, DEFAULT_POLICY, MODES, type Policy } from '../policy/policy';
import { show } from './check';
import type { AlertmanagerConfig, FleetConfig } from './fleet';
import { hostNameProblem, unitNameProblem } from './names';
import {
  choice,
  custom,
  duration,
  flag,
  httpUrl,
  integer,
  listen,
  listenOrOff,
  localPath,
  optionalPath,
  optionalText,
  raw,
  readableFile,
  readSection,
  size,
  stringList,
  stringMap,
  text,
  type Fields,
} from './fields';

export type ManagerKind = 'systemd' | 'systemd-user';
export const MANAGER_KINDS: readonly ManagerKind[] = ['systemd', 'systemd-user'];

/** The top-level sections, in the order they are read (later ones use earlier ones' values). */
export const SECTIONS = [
  'temporal',
  'api',
  'prometheus',
  'alerts',
  'policy',
  'audit',
  'escalation',
  'worker',
  'fleet',
  'alertmanager',
  'services',
] as const;

export const TLS = {
  serverName: optionalText('serverName'),
  /** Checked when the config loads (line-numbered problem), not when the first connection fails. */
  caFile: readableFile('caFile', false),
  certFile: readableFile('certFile', false),
  keyFile: readableFile('keyFile', false),
};
export type TlsConfig = Fields<typeof TLS>;

export const TEMPORAL = {
  /** `embedded` or host:port of a Temporal frontend. */
  address: text('address', 'embedded', (v) =>
    v === 'embedded' || /^[^\s:/]+:\d{1,5}$/.test(v)
      ? null
      : `${show(v)} must be "embedded" or host:port (e.g. temporal.internal:7233)`,
  ),
  namespace: text('namespace', 'default'),
  dataDir: localPath('dataDir', './data'),
  /** gRPC port of the embedded dev server. */
  port: integer('port', 7233, 1, 65535),
  uiPort: integer('uiPort', (t) => (t.port as number) + 1000, 1, 65535),
  /** Register and upsert the custom search attributes SelfhealService/Host/Phase/Status/Failures. */
  searchAttributes: flag('searchAttributes', true),
  /** `true`: TLS with the system's roots; a mapping: with these files. */
  tls: custom<TlsConfig | null>('tls', (c, v, path, ctx) => {
    if (v === undefined || v === null || v === false) return null;
    const tls = readSection(c, v === true ? {} : v, path, TLS, ctx.cwd);
    if (!!tls.certFile !== !!tls.keyFile) c.problem(path, 'certFile and keyFile go together');
    return tls;
  }),
  apiKey: optionalText('apiKey'),
  /** Base URL of the Temporal UI, for links in escalations and the start banner. */
  uiUrl: httpUrl('uiUrl', (t) => (t.address === 'embedded' ? `http://127.0.0.1:${t.uiPort as number}` : null)),
};

/** `api.tls`: the API's own certificate; with clientCaFile, clients must present one it signed. */
export const API_TLS = {
  certFile: readableFile('certFile', true),
  keyFile: readableFile('keyFile', true),
  clientCaFile: readableFile('clientCaFile', false),
};
export type ApiTlsConfig = Fields<typeof API_TLS>;

export const API = {
  listen: listen('listen', '127.0.0.1:5000'),
  /** HTTPS (and mutual TLS with clientCaFile); required on a non-loopback listen address. */
  tls: custom<ApiTlsConfig | null>('tls', (c, v, path, ctx) =>
    v === undefined || v === null || v === false ? null : readSection(c, v, path, API_TLS, ctx.cwd),
  ),
  /** Serve plain HTTP on a non-loopback address (e.g. behind a TLS-terminating proxy or inside a container network). */
  allowPlaintext: flag('allowPlaintext', false),
  token: optionalText('token'),
  adminToken: optionalText('adminToken'),
  /** Allow running without tokens; only honoured on a loopback address. */
  insecure: flag('insecure', false),
  bodyLimitBytes: size('bodyLimit', '1MiB'),
  /** How long one webhook request may wait for Temporal before answering 503. */
  temporalTimeoutMs: duration('temporalTimeout', 10_000, { min: 100 }),
  /** Append every accepted webhook body to this file (JSON lines): an input for `selfheal simulate`. */
  recordDeliveries: optionalPath('recordDeliveries'),
};

export const PROMETHEUS = {
  url: httpUrl('url', null),
  timeoutMs: duration('timeout', 5_000, { min: 100 }),
};

export const ALERTS = {
  serviceLabel: text('serviceLabel', 'service'),
  hostLabel: text('hostLabel', 'host'),
  /** Alerts about self-healing itself must never trigger a restart. */
  ignoreAlertnames: stringList(
    'ignoreAlertnames',
    [
      'SelfHealingExhausted',
      'ConsecutiveFailures',
      'SelfHealingActive',
      'SelfHealingUnavailable',
      'SelfHealingBreakerOpen',
      'ServiceFlapping',
    ],
    'alert names',
  ),
};

/** The policy keys; defaults come from `base` (the built-in policy, or the top-level one for a service). */
export const policyFields = (base: Policy = DEFAULT_POLICY) => ({
  validationWindowMs: duration('validationWindow', base.validationWindowMs),
  cooldownMs: duration('cooldown', base.cooldownMs),
  maxRestartsPerHour: integer('maxRestartsPerHour', base.maxRestartsPerHour, 0, 1000),
  maxConsecutiveFailures: integer('maxConsecutiveFailures', base.maxConsecutiveFailures, 0, 1000),
  verifyTimeoutMs: duration('verifyTimeout', base.verifyTimeoutMs, { min: 1 }),
  verifyStableMs: duration('verifyStableFor', base.verifyStableMs),
  hostTimeoutMs: duration('hostTimeout', base.hostTimeoutMs, { min: 1000 }),
  mode: choice('mode', MODES, base.mode),
  verifyAlertClears: flag('verifyAlertClears', base.verifyAlertClears),
  flapping: custom<Policy['flapping']>('flapping', (c, v, path, ctx) =>
    readSection(c, v ?? {}, path, flappingFields(base.flapping ?? DEFAULT_FLAPPING), ctx.cwd),
  ),
});

const flappingFields = (base: NonNullable<Policy['flapping']>) => ({
  incidents: integer('incidents', base.incidents, 2, 10_000),
  windowMs: duration('window', base.windowMs, { min: 60_000 }),
});

export const audit = (dataDir: string) => ({ file: localPath('file', `${dataDir}/selfheal.log`) });

export const WEBHOOK = {
  url: httpUrl('url', null),
  headers: stringMap('headers'),
  timeoutMs: duration('timeout', 10_000, { min: 100 }),
};

/**
 * The control worker's workflow cache by default. 250 rather than 1,000: at 10,000 services stormed at
 * once the worker peaked at 648 MiB instead of 1,091, all validating after 251 s instead of 236 (one
 * run each; BENCHMARKS.md, "Target 1").
 */
export const DEFAULT_MAX_CACHED_WORKFLOWS = 250;

export const worker = (dataDir: string) => ({
  /** Host-local state (restart attempt markers). */
  stateDir: localPath('stateDir', `${dataDir}/host-state`),
  /** Where the Temporal SDK's own Prometheus exporter listens; null disables it. */
  temporalMetricsListen: listenOrOff('temporalMetrics', '127.0.0.1:9464'),
  /** Run `systemctl restart` through `sudo -n` (see `selfheal privileges`); polkit needs no sudo. */
  sudo: flag('sudo', false),
  /** Where a control worker running without the API serves the product's counters; null disables. */
  metricsListen: listenOrOff('metrics', '127.0.0.1:9465'),
  /**
   * Entity workflows the control worker keeps in memory (~180 KiB each); the others replay their
   * short history on their next task. Bounds the worker's memory whatever the fleet size.
   */
  maxCachedWorkflows: integer('maxCachedWorkflows', DEFAULT_MAX_CACHED_WORKFLOWS, 0, 1_000_000),
});

/** One entry of `services`; the services reader adds the checks across entries. */
export const SERVICE = {
  /** The service name as alerts carry it (label `service`); by default also the unit name. */
  name: optionalText('name', null, (v) =>
    v === null ? 'is required (the unit name, e.g. jira-worker.service)' : nameProblem(v, unitNameProblem),
  ),
  host: optionalText('host', null, (v) =>
    v === null ? 'is required (the host that runs this service)' : nameProblem(v, hostNameProblem),
  ),
  /** The systemd unit; the services reader adds the type suffix (`jira-worker` → `jira-worker.service`). */
  unit: optionalText(
    'unit',
    (s) => s.name as string | null,
    (v, s) => (v !== null && v !== s.name ? nameProblem(v, unitNameProblem) : null),
  ),
  manager: choice('manager', MANAGER_KINDS, 'systemd'),
  /** Read by the services reader, on top of the top-level policy. */
  policy: raw('policy'),
  /** Guarded services this one depends on: `[{ service, host? }]`; read and checked by the services reader. */
  dependsOn: raw('dependsOn'),
};

function nameProblem(name: string, problemOf: (name: string) => string | null): string | null {
  const problem = problemOf(name);
  return problem ? `${show(name)} ${problem}` : null;
}

export type WebhookConfig = { [K in keyof Fields<typeof WEBHOOK>]: NonNullable<Fields<typeof WEBHOOK>[K]> };

export interface ServiceConfig {
  name: string;
  host: string;
  unit: string;
  manager: ManagerKind;
  policy: Policy;
  /** Keys (`host/service`) of the guarded services this one depends on. */
  dependsOn: string[];
}

export interface Config {
  /** Where it was loaded from, for messages. */
  source: string;
  temporal: Fields<typeof TEMPORAL> & { embedded: boolean };
  api: Fields<typeof API> & { host: string; port: number };
  prometheus: Fields<typeof PROMETHEUS>;
  alerts: Fields<typeof ALERTS>;
  policy: Policy;
  audit: Fields<ReturnType<typeof audit>>;
  escalation: { webhooks: WebhookConfig[] };
  worker: Fields<ReturnType<typeof worker>>;
  fleet: FleetConfig;
  alertmanager: AlertmanagerConfig;
  services: ServiceConfig[];
}
