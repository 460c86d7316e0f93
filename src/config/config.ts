// The one YAML configuration file: parsed, `${ENV}`-substituted and validated into a typed,
// fully-defaulted Config. Every problem is reported with the key at fault (and its line).
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import { DEFAULT_POLICY, MODES, mergePolicy, type Mode, type Policy } from '../policy/policy';
import { formatDuration, parseDuration } from '../policy/duration';
import { hostNameProblem, normalizeUnitName, unitNameProblem } from './names';

export type ManagerKind = 'systemd' | 'systemd-user';
export const MANAGER_KINDS: readonly ManagerKind[] = ['systemd', 'systemd-user'];

export interface ServiceConfig {
  /** The service name as alerts carry it (label `service`); by default also the unit name. */
  name: string;
  host: string;
  /** The systemd unit, with its type suffix (`jira-worker` becomes `jira-worker.service`). */
  unit: string;
  manager: ManagerKind;
  policy: Policy;
}

export interface WebhookConfig {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
}

export interface TlsConfig {
  serverName: string | null;
  caFile: string | null;
  certFile: string | null;
  keyFile: string | null;
}

export interface Config {
  /** Where it was loaded from, for messages. */
  source: string;
  temporal: {
    /** `embedded` or host:port of a Temporal frontend. */
    address: string;
    embedded: boolean;
    namespace: string;
    dataDir: string;
    /** gRPC port of the embedded dev server. */
    port: number;
    uiPort: number;
    /** Register and upsert the custom search attributes SelfhealService/Host/Phase/Status/Failures. */
    searchAttributes: boolean;
    tls: TlsConfig | null;
    apiKey: string | null;
    /** Base URL of the Temporal UI, for links in escalations and the start banner. */
    uiUrl: string | null;
  };
  api: {
    listen: string;
    host: string;
    port: number;
    token: string | null;
    adminToken: string | null;
    /** Allow running without tokens; only honoured on a loopback address. */
    insecure: boolean;
    bodyLimitBytes: number;
    /** How long one webhook request may wait for Temporal before answering 503. */
    temporalTimeoutMs: number;
  };
  prometheus: { url: string | null; timeoutMs: number };
  alerts: {
    serviceLabel: string;
    hostLabel: string;
    /** Alerts about self-healing itself must never trigger a restart. */
    ignoreAlertnames: string[];
  };
  policy: Policy;
  audit: { file: string };
  escalation: { webhooks: WebhookConfig[] };
  worker: {
    /** Host-local state (restart attempt markers). */
    stateDir: string;
    /** Where the Temporal SDK's own Prometheus exporter listens; null disables it. */
    temporalMetricsListen: string | null;
    /** Run `systemctl restart` through `sudo -n` (see `selfheal privileges`); polkit needs no sudo. */
    sudo: boolean;
    /** Where a control worker running without the API serves the product's counters; null disables. */
    metricsListen: string | null;
  };
  services: ServiceConfig[];
}

export interface ConfigProblem {
  path: string;
  message: string;
  line?: number;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(
    readonly source: string,
    problems: ConfigProblem[],
  ) {
    const sorted = [...problems].sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
    super(
      `${source}: ${sorted.length} problem${sorted.length === 1 ? '' : 's'}:\n` +
        sorted.map((p) => `  - ${p.line ? `line ${p.line}: ` : ''}${p.path || '(top level)'}: ${p.message}`).join('\n'),
    );
    this.name = 'ConfigError';
    this.problems = sorted;
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = Record<string, unknown>;

const POLICY_KEYS: Record<string, keyof Policy> = {
  validationWindow: 'validationWindowMs',
  cooldown: 'cooldownMs',
  maxRestartsPerHour: 'maxRestartsPerHour',
  maxConsecutiveFailures: 'maxConsecutiveFailures',
  verifyTimeout: 'verifyTimeoutMs',
  verifyStableFor: 'verifyStableMs',
  hostTimeout: 'hostTimeoutMs',
  mode: 'mode',
  verifyAlertClears: 'verifyAlertClears',
};

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return dp[a.length][b.length];
}

function suggest(key: string, allowed: readonly string[]): string {
  const best = allowed
    .map((k) => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) }))
    .sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best.k}"?)` : '';
}

const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v)));

/** Collects problems while walking the parsed YAML. */
class Checker {
  readonly problems: ConfigProblem[] = [];
  constructor(private readonly lineOf: (path: (string | number)[]) => number | undefined) {}

  problem(path: (string | number)[], message: string): void {
    this.problems.push({ path: formatPath(path), message, line: this.lineOf(path) });
  }

  object(v: unknown, path: (string | number)[], allowed: readonly string[]): Obj | null {
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) {
      this.problem(path, `must be a mapping (key: value), got ${show(v)}`);
      return null;
    }
    for (const key of Object.keys(v)) {
      if (!allowed.includes(key)) {
        this.problem([...path, key], `unknown key${suggest(key, allowed)}; allowed here: ${allowed.join(', ')}`);
      }
    }
    return v as Obj;
  }

  string(
    v: unknown,
    path: (string | number)[],
    dflt: string | null,
    opts: { allowEmpty?: boolean } = {},
  ): string | null {
    if (v === undefined || v === null) return dflt;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (typeof v !== 'string') {
      this.problem(path, `must be a string, got ${show(v)}`);
      return dflt;
    }
    if (v === '' && !opts.allowEmpty) return dflt;
    return v;
  }

  duration(v: unknown, path: (string | number)[], dflt: number, opts: { min?: number } = {}): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string') {
      this.problem(path, `must be a duration with a unit, like 90s, 2m or 1h (got ${show(v)})`);
      return dflt;
    }
    const ms = parseDuration(v);
    if (ms === null) {
      this.problem(path, `${show(v)} is not a duration; write it like 500ms, 90s, 2m, 1h or 1h30m`);
      return dflt;
    }
    if (opts.min !== undefined && ms < opts.min) {
      this.problem(path, `${show(v)} is too short (minimum ${opts.min}ms)`);
      return dflt;
    }
    return ms;
  }

  integer(v: unknown, path: (string | number)[], dflt: number, min: number, max: number): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      this.problem(path, `must be a whole number, got ${show(v)}`);
      return dflt;
    }
    if (v < min || v > max) {
      this.problem(path, `must be between ${min} and ${max}, got ${v}`);
      return dflt;
    }
    return v;
  }

  boolean(v: unknown, path: (string | number)[], dflt: boolean): boolean {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') {
      this.problem(path, `must be true or false, got ${show(v)}`);
      return dflt;
    }
    return v;
  }

  oneOf<T extends string>(v: unknown, path: (string | number)[], allowed: readonly T[], dflt: T): T {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string' || !allowed.includes(v as T)) {
      this.problem(path, `must be one of ${allowed.join(', ')}; got ${show(v)}`);
      return dflt;
    }
    return v as T;
  }

  url(v: unknown, path: (string | number)[], dflt: string | null): string | null {
    const s = this.string(v, path, dflt);
    if (s === null || s === dflt) return s;
    try {
      const u = new URL(s);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
      return s.replace(/\/+$/, '');
    } catch {
      this.problem(path, `${show(s)} is not an http(s) URL`);
      return dflt;
    }
  }
}

function formatPath(path: (string | number)[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/** Parses `host:port`, `[v6]:port` or `:port`. */
export function parseListen(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 0 || port > 65535) return null;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** `${NAME}`, `${NAME:-default}`; `$${` stays a literal `${`. Applied to string values only, after YAML parsing. */
function substituteEnv(value: unknown, path: (string | number)[], env: NodeJS.ProcessEnv, c: Checker): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$?\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (whole, name: string, dflt?: string) => {
      if (whole.startsWith('$$')) return whole.slice(1);
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (dflt !== undefined) return dflt;
      c.problem(path, `environment variable ${name} is not set (write \${${name}:-} to make it optional)`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, [...path, i], env, c));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteEnv(v, [...path, k], env, c)]));
  }
  return value;
}

function readPolicy(c: Checker, raw: unknown, path: (string | number)[], base: Policy): Policy {
  const o = c.object(raw, path, Object.keys(POLICY_KEYS));
  if (!o) return base;
  const p = (k: string) => [...path, k];
  const policy: Policy = {
    validationWindowMs: c.duration(o.validationWindow, p('validationWindow'), base.validationWindowMs),
    cooldownMs: c.duration(o.cooldown, p('cooldown'), base.cooldownMs),
    maxRestartsPerHour: c.integer(o.maxRestartsPerHour, p('maxRestartsPerHour'), base.maxRestartsPerHour, 0, 1000),
    maxConsecutiveFailures: c.integer(
      o.maxConsecutiveFailures,
      p('maxConsecutiveFailures'),
      base.maxConsecutiveFailures,
      0,
      1000,
    ),
    verifyTimeoutMs: c.duration(o.verifyTimeout, p('verifyTimeout'), base.verifyTimeoutMs, { min: 1 }),
    verifyStableMs: c.duration(o.verifyStableFor, p('verifyStableFor'), base.verifyStableMs),
    hostTimeoutMs: c.duration(o.hostTimeout, p('hostTimeout'), base.hostTimeoutMs, { min: 1000 }),
    mode: c.oneOf<Mode>(o.mode, p('mode'), MODES, base.mode),
    verifyAlertClears: c.boolean(o.verifyAlertClears, p('verifyAlertClears'), base.verifyAlertClears),
  };
  // Checked on the effective values (defaults included): a unit cannot stay up for verifyStableFor
  // inside a shorter verifyTimeout, so every verification would fail and every restart escalate.
  // Reported where it is set: per-service policies inheriting a bad top-level pair are not repeated.
  const setsVerify = o.verifyTimeout !== undefined || o.verifyStableFor !== undefined || base === DEFAULT_POLICY;
  if (setsVerify && policy.verifyStableMs >= policy.verifyTimeoutMs) {
    const [key, other] =
      o.verifyTimeout !== undefined ? ['verifyTimeout', 'verifyStableFor'] : ['verifyStableFor', 'verifyTimeout'];
    c.problem(
      p(key),
      `verifyTimeout (${formatDuration(policy.verifyTimeoutMs)}) must be longer than verifyStableFor (${formatDuration(policy.verifyStableMs)}), ` +
        `or every verification fails; raise verifyTimeout or lower verifyStableFor` +
        (o[other] === undefined ? ` (${other} is ${key === 'verifyTimeout' ? 'the default' : 'inherited'})` : ''),
    );
  }
  return mergePolicy(base, policy);
}

export interface ParseOptions {
  source?: string;
  env?: NodeJS.ProcessEnv;
  /** Relative paths (dataDir, audit file, ...) resolve against this folder. */
  cwd?: string;
}

/** Parses and validates configuration text. Throws ConfigError listing every problem. */
export function parseConfig(text: string, opts: ParseOptions = {}): Config {
  const source = opts.source ?? '<config>';
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => ({
        path: '',
        message: `YAML syntax: ${e.message.split('\n')[0]}`,
        line: lineCounter.linePos(e.pos[0]).line,
      })),
    );
  }
  // Line of the key (or list item) a path names; falls back to the nearest ancestor that exists.
  const lineOf = (path: (string | number)[]) => {
    let node: unknown = doc.contents;
    let line: number | undefined = undefined;
    for (const part of path) {
      if (isMap(node)) {
        const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(part));
        if (!pair) break;
        const keyRange = (pair.key as { range?: [number, number, number] }).range;
        if (keyRange) line = lineCounter.linePos(keyRange[0]).line;
        node = pair.value;
      } else if (isSeq(node) && typeof part === 'number') {
        node = node.items[part];
        const range = (node as { range?: [number, number, number] } | undefined)?.range;
        if (range) line = lineCounter.linePos(range[0]).line;
      } else break;
    }
    return line;
  };
  const c = new Checker(lineOf);
  const rawTree = (doc.toJS() ?? {}) as Json;
  const raw = substituteEnv(rawTree, [], env, c);
  const top = c.object(
    raw,
    [],
    ['temporal', 'api', 'prometheus', 'alerts', 'policy', 'audit', 'escalation', 'worker', 'services'],
  );
  if (!top) throw new ConfigError(source, c.problems);

  // temporal
  const t =
    c.object(
      top.temporal,
      ['temporal'],
      ['address', 'namespace', 'dataDir', 'port', 'uiPort', 'searchAttributes', 'tls', 'apiKey', 'uiUrl'],
    ) ?? {};
  const address = c.string(t.address, ['temporal', 'address'], 'embedded')!;
  const embedded = address === 'embedded';
  if (!embedded && !/^[^\s:/]+:\d{1,5}$/.test(address)) {
    c.problem(
      ['temporal', 'address'],
      `${show(address)} must be "embedded" or host:port (e.g. temporal.internal:7233)`,
    );
  }
  const port = c.integer(t.port, ['temporal', 'port'], 7233, 1, 65535);
  const uiPort = c.integer(t.uiPort, ['temporal', 'uiPort'], port + 1000, 1, 65535);
  let tls: TlsConfig | null = null;
  if (t.tls !== undefined && t.tls !== null && t.tls !== false) {
    const tt =
      t.tls === true
        ? {}
        : (c.object(t.tls, ['temporal', 'tls'], ['serverName', 'caFile', 'certFile', 'keyFile']) ?? {});
    tls = {
      serverName: c.string(tt.serverName, ['temporal', 'tls', 'serverName'], null),
      caFile: c.string(tt.caFile, ['temporal', 'tls', 'caFile'], null),
      certFile: c.string(tt.certFile, ['temporal', 'tls', 'certFile'], null),
      keyFile: c.string(tt.keyFile, ['temporal', 'tls', 'keyFile'], null),
    };
    if (!!tls.certFile !== !!tls.keyFile) c.problem(['temporal', 'tls'], 'certFile and keyFile go together');
  }
  const apiKey = c.string(t.apiKey, ['temporal', 'apiKey'], null);
  const temporal: Config['temporal'] = {
    address,
    embedded,
    namespace: c.string(t.namespace, ['temporal', 'namespace'], 'default')!,
    dataDir: resolve(cwd, c.string(t.dataDir, ['temporal', 'dataDir'], './data')!),
    port,
    uiPort,
    searchAttributes: c.boolean(t.searchAttributes, ['temporal', 'searchAttributes'], true),
    tls: tls ?? (apiKey ? { serverName: null, caFile: null, certFile: null, keyFile: null } : null),
    apiKey,
    uiUrl: c.url(t.uiUrl, ['temporal', 'uiUrl'], embedded ? `http://127.0.0.1:${uiPort}` : null),
  };

  // api
  const a =
    c.object(top.api, ['api'], ['listen', 'token', 'adminToken', 'insecure', 'bodyLimit', 'temporalTimeout']) ?? {};
  const listen = c.string(a.listen, ['api', 'listen'], '127.0.0.1:5000')!;
  const hp = parseListen(listen);
  if (!hp) c.problem(['api', 'listen'], `${show(listen)} must be host:port, e.g. 127.0.0.1:5000`);
  const bodyLimit = c.string(a.bodyLimit, ['api', 'bodyLimit'], '1MiB')!;
  const bodyLimitBytes = parseSize(bodyLimit);
  if (bodyLimitBytes === null)
    c.problem(['api', 'bodyLimit'], `${show(bodyLimit)} is not a size; write it like 512KiB or 2MiB`);
  const api: Config['api'] = {
    listen,
    host: hp?.host ?? '127.0.0.1',
    port: hp?.port ?? 5000,
    token: c.string(a.token, ['api', 'token'], null),
    adminToken: c.string(a.adminToken, ['api', 'adminToken'], null),
    insecure: c.boolean(a.insecure, ['api', 'insecure'], false),
    bodyLimitBytes: bodyLimitBytes ?? 1024 * 1024,
    temporalTimeoutMs: c.duration(a.temporalTimeout, ['api', 'temporalTimeout'], 10_000, { min: 100 }),
  };
  if (api.insecure && !isLoopback(api.host)) {
    c.problem(['api', 'insecure'], `only allowed when api.listen is a loopback address (it is ${show(api.host)})`);
  }
  for (const k of ['token', 'adminToken'] as const) {
    const v = api[k];
    if (v !== null && v.length < 16) c.problem(['api', k], 'is shorter than 16 characters; use a long random secret');
  }

  // prometheus
  const pr = c.object(top.prometheus, ['prometheus'], ['url', 'timeout']) ?? {};
  const prometheus = {
    url: c.url(pr.url, ['prometheus', 'url'], null),
    timeoutMs: c.duration(pr.timeout, ['prometheus', 'timeout'], 5_000, { min: 100 }),
  };

  // alerts
  const al = c.object(top.alerts, ['alerts'], ['serviceLabel', 'hostLabel', 'ignoreAlertnames']) ?? {};
  let ignoreAlertnames = ['SelfHealingExhausted', 'ConsecutiveFailures', 'SelfHealingActive', 'SelfHealingUnavailable'];
  if (al.ignoreAlertnames !== undefined) {
    if (!Array.isArray(al.ignoreAlertnames) || al.ignoreAlertnames.some((x) => typeof x !== 'string')) {
      c.problem(['alerts', 'ignoreAlertnames'], 'must be a list of alert names');
    } else ignoreAlertnames = al.ignoreAlertnames as string[];
  }
  const alerts = {
    serviceLabel: c.string(al.serviceLabel, ['alerts', 'serviceLabel'], 'service')!,
    hostLabel: c.string(al.hostLabel, ['alerts', 'hostLabel'], 'host')!,
    ignoreAlertnames,
  };

  const policy = readPolicy(c, top.policy, ['policy'], DEFAULT_POLICY);

  const au = c.object(top.audit, ['audit'], ['file']) ?? {};
  const audit = { file: resolve(cwd, c.string(au.file, ['audit', 'file'], `${temporal.dataDir}/selfheal.log`)!) };

  // escalation
  const es = c.object(top.escalation, ['escalation'], ['webhooks']) ?? {};
  const webhooks: WebhookConfig[] = [];
  if (es.webhooks !== undefined && es.webhooks !== null) {
    if (!Array.isArray(es.webhooks)) c.problem(['escalation', 'webhooks'], 'must be a list of { url: ... }');
    else {
      es.webhooks.forEach((w, i) => {
        const path = ['escalation', 'webhooks', i];
        const wo = typeof w === 'string' ? { url: w } : c.object(w, path, ['url', 'headers', 'timeout']);
        if (!wo) return;
        const url = c.url(wo.url, [...path, 'url'], null);
        if (!url) {
          if (wo.url === undefined) c.problem([...path, 'url'], 'is required');
          return;
        }
        const headers: Record<string, string> = {};
        const ho = c.object(wo.headers, [...path, 'headers'], Object.keys((wo.headers as Obj) ?? {}));
        for (const [k, v] of Object.entries(ho ?? {})) {
          const s = c.string(v, [...path, 'headers', k], null);
          if (s !== null) headers[k] = s;
        }
        webhooks.push({ url, headers, timeoutMs: c.duration(wo.timeout, [...path, 'timeout'], 10_000, { min: 100 }) });
      });
    }
  }

  const w = c.object(top.worker, ['worker'], ['stateDir', 'temporalMetrics', 'sudo', 'metrics']) ?? {};
  const temporalMetricsListen = c.string(w.temporalMetrics, ['worker', 'temporalMetrics'], '127.0.0.1:9464', {
    allowEmpty: true,
  });
  if (temporalMetricsListen && !parseListen(temporalMetricsListen)) {
    c.problem(['worker', 'temporalMetrics'], `${show(temporalMetricsListen)} must be host:port, or "" to disable`);
  }
  const worker = {
    stateDir: resolve(cwd, c.string(w.stateDir, ['worker', 'stateDir'], `${temporal.dataDir}/host-state`)!),
    temporalMetricsListen: temporalMetricsListen || null,
    sudo: c.boolean(w.sudo, ['worker', 'sudo'], false),
    metricsListen: null as string | null,
  };
  const metricsListen = c.string(w.metrics, ['worker', 'metrics'], '127.0.0.1:9465', { allowEmpty: true });
  if (metricsListen && !parseListen(metricsListen)) {
    c.problem(['worker', 'metrics'], `${show(metricsListen)} must be host:port, or "" to disable`);
  }
  worker.metricsListen = metricsListen || null;

  // services
  const services: ServiceConfig[] = [];
  if (top.services === undefined || top.services === null) {
    c.problem(['services'], 'is required: list the services selfheal may restart');
  } else if (!Array.isArray(top.services)) {
    c.problem(['services'], 'must be a list of { name, host, manager, policy }');
  } else {
    const seen = new Map<string, number>();
    // One unit on one host has one budget: two entries for it would each allow the full budget.
    const seenUnits = new Map<string, number>();
    top.services.forEach((s, i) => {
      const path = ['services', i];
      const so = c.object(s, path, ['name', 'host', 'unit', 'manager', 'policy']);
      if (!so) return;
      const name = c.string(so.name, [...path, 'name'], null);
      const host = c.string(so.host, [...path, 'host'], null);
      if (name === null) c.problem([...path, 'name'], 'is required (the unit name, e.g. jira-worker.service)');
      else {
        const problem = unitNameProblem(name);
        if (problem) c.problem([...path, 'name'], `${show(name)} ${problem}`);
      }
      if (host === null) c.problem([...path, 'host'], 'is required (the host that runs this service)');
      else {
        const problem = hostNameProblem(host);
        if (problem) c.problem([...path, 'host'], `${show(host)} ${problem}`);
      }
      const unit = c.string(so.unit, [...path, 'unit'], name);
      if (unit !== null && unit !== name) {
        const problem = unitNameProblem(unit);
        if (problem) c.problem([...path, 'unit'], `${show(unit)} ${problem}`);
      }
      const manager = c.oneOf<ManagerKind>(so.manager, [...path, 'manager'], MANAGER_KINDS, 'systemd');
      const svcPolicy = readPolicy(c, so.policy, [...path, 'policy'], policy);
      if (name === null || host === null) return;
      const key = `${host}/${name}`;
      if (seen.has(key)) {
        c.problem(
          [...path, 'name'],
          `${show(name)} on host ${show(host)} is already listed at services[${seen.get(key)}]`,
        );
        return;
      }
      seen.set(key, i);
      // Once, here: the restart argv, `selfheal privileges` and polkit all see systemd's full unit name.
      const fullUnit = normalizeUnitName(unit ?? name);
      const unitKey = `${host}/${manager === 'systemd-user' ? 'user' : 'system'}/${fullUnit}`;
      if (seenUnits.has(unitKey)) {
        c.problem(
          [...path, so.unit !== undefined ? 'unit' : 'name'],
          `unit ${show(fullUnit)} on host ${show(host)} is already guarded by services[${seenUnits.get(unitKey)}]; ` +
            'one unit gets one entry (two entries would give it two restart budgets)',
        );
        return;
      }
      seenUnits.set(unitKey, i);
      services.push({ name, host, unit: fullUnit, manager, policy: svcPolicy });
    });
  }

  if (c.problems.length) throw new ConfigError(source, c.problems);
  return { source, temporal, api, prometheus, alerts, policy, audit, escalation: { webhooks }, worker, services };
}

export function parseSize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/i.exec(text.trim());
  if (!m) return null;
  const unit = (m[2] ?? 'B').toLowerCase();
  const mult: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 };
  return Math.round(Number(m[1]) * mult[unit]);
}

/** Which file to read: the flag, else SELFHEAL_CONFIG, else ./selfheal.yaml. */
export function configPath(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env.SELFHEAL_CONFIG ?? 'selfheal.yaml');
}

export function loadConfig(flag?: string, env: NodeJS.ProcessEnv = process.env): Config {
  const path = configPath(flag, env);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : String(err);
    throw new ConfigError(path, [
      { path: '', message: `cannot read the config (${why}); pass --config FILE or set SELFHEAL_CONFIG` },
    ]);
  }
  return parseConfig(text, { source: path, env });
}

/** Services that run on one host. */
export function servicesOnHost(config: Config, host: string): ServiceConfig[] {
  return config.services.filter((s) => s.host === host);
}

const serviceIndex = new WeakMap<Config, Map<string, ServiceConfig>>();

/** The configured service on a host, through an index built once per config (fleets have thousands). */
export function findService(config: Config, host: string, name: string): ServiceConfig | undefined {
  let index = serviceIndex.get(config);
  if (!index) {
    index = new Map(config.services.map((s) => [`${s.host}\u0000${s.name}`, s]));
    serviceIndex.set(config, index);
  }
  return index.get(`${host}\u0000${name}`);
}
