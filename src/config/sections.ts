// One reader per section of the configuration file: its table (src/config/schema.ts), then the
// checks that span keys or entries.
import { formatDuration } from '../policy/duration';
import { DEFAULT_POLICY, mergePolicy, type Policy } from '../policy/policy';
import { isLoopback, parseListen } from '../util/parse';
import { show, type Checker, type Obj, type Path } from './check';
import { keysOf, readEntry, readSection } from './fields';
import { checkDependencies, readDependsOn } from './fleet';
import { normalizeUnitName } from './names';
import {
  ALERTS,
  API,
  audit,
  policyFields,
  PROMETHEUS,
  SERVICE,
  TEMPORAL,
  WEBHOOK,
  worker,
  type Config,
  type ServiceConfig,
  type WebhookConfig,
} from './schema';

export function readTemporal(c: Checker, raw: unknown, cwd: string): Config['temporal'] {
  const t = readSection(c, raw, ['temporal'], TEMPORAL, cwd);
  const noFiles = { serverName: null, caFile: null, certFile: null, keyFile: null };
  // An API key (Temporal Cloud) implies TLS.
  return { ...t, embedded: t.address === 'embedded', tls: t.tls ?? (t.apiKey ? noFiles : null) };
}

export function readApi(c: Checker, raw: unknown, cwd: string): Config['api'] {
  const a = readSection(c, raw, ['api'], API, cwd);
  const hp = parseListen(a.listen);
  const api = { ...a, host: hp?.host ?? '127.0.0.1', port: hp?.port ?? 5000 };
  if (!api.tls && !api.allowPlaintext && !isLoopback(api.host)) {
    c.problem(
      ['api', 'listen'],
      `${show(api.listen)} is not a loopback address, and without TLS the bearer tokens would cross the network in clear: ` +
        'set api.tls (certFile, keyFile, optionally clientCaFile), or api.allowPlaintext: true when a proxy or a private network protects it',
    );
  }
  if (api.insecure && !isLoopback(api.host)) {
    c.problem(['api', 'insecure'], `only allowed when api.listen is a loopback address (it is ${show(api.host)})`);
  }
  for (const k of ['token', 'adminToken'] as const) {
    const v = api[k];
    if (v !== null && v.length < 16) c.problem(['api', k], 'is shorter than 16 characters; use a long random secret');
  }
  return api;
}

export const readPrometheus = (c: Checker, raw: unknown, cwd: string): Config['prometheus'] =>
  readSection(c, raw, ['prometheus'], PROMETHEUS, cwd);

export const readAlerts = (c: Checker, raw: unknown, cwd: string): Config['alerts'] =>
  readSection(c, raw, ['alerts'], ALERTS, cwd);

/** The top-level policy (on the built-in defaults), or a service's (on the top-level one). */
export function readPolicy(c: Checker, raw: unknown, path: Path, cwd: string, base: Policy = DEFAULT_POLICY): Policy {
  const policy = readEntry(c, raw, path, policyFields(base), cwd);
  if (!policy) return base;
  const o = (raw ?? {}) as Obj;
  // Checked on the effective values (defaults included): a unit cannot stay up for verifyStableFor
  // inside a shorter verifyTimeout, so every verification would fail and every restart escalate.
  // Reported where it is set: per-service policies inheriting a bad top-level pair are not repeated.
  const setsVerify = o.verifyTimeout !== undefined || o.verifyStableFor !== undefined || base === DEFAULT_POLICY;
  if (setsVerify && policy.verifyStableMs >= policy.verifyTimeoutMs) {
    const [key, other] =
      o.verifyTimeout !== undefined ? ['verifyTimeout', 'verifyStableFor'] : ['verifyStableFor', 'verifyTimeout'];
    c.problem(
      [...path, key],
      `verifyTimeout (${formatDuration(policy.verifyTimeoutMs)}) must be longer than verifyStableFor (${formatDuration(policy.verifyStableMs)}), ` +
        `or every verification fails; raise verifyTimeout or lower verifyStableFor` +
        (o[other] === undefined ? ` (${other} is ${key === 'verifyTimeout' ? 'the default' : 'inherited'})` : ''),
    );
  }
  return mergePolicy(base, policy);
}

export const readAudit = (c: Checker, raw: unknown, cwd: string, dataDir: string): Config['audit'] =>
  readSection(c, raw, ['audit'], audit(dataDir), cwd);

export function readEscalation(c: Checker, raw: unknown, cwd: string): Config['escalation'] {
  const es = c.object(raw, ['escalation'], ['webhooks']) ?? {};
  const webhooks: WebhookConfig[] = [];
  if (es.webhooks === undefined || es.webhooks === null) return { webhooks };
  if (!Array.isArray(es.webhooks)) {
    c.problem(['escalation', 'webhooks'], 'must be a list of { url: ... }');
    return { webhooks };
  }
  es.webhooks.forEach((w, i) => {
    const path = ['escalation', 'webhooks', i];
    const wo = typeof w === 'string' ? { url: w } : c.object(w, path, keysOf(WEBHOOK));
    if (!wo) return;
    // Without a usable url the rest of the entry is not worth reporting on.
    const ctx = { cwd, section: {} };
    const url = WEBHOOK.url.read(c, wo.url, [...path, 'url'], ctx);
    if (!url) {
      if (wo.url === undefined) c.problem([...path, 'url'], 'is required');
      return;
    }
    const headers = WEBHOOK.headers.read(c, wo.headers, [...path, 'headers'], ctx);
    webhooks.push({ url, headers, timeoutMs: WEBHOOK.timeoutMs.read(c, wo.timeout, [...path, 'timeout'], ctx) });
  });
  return { webhooks };
}

export const readWorker = (c: Checker, raw: unknown, cwd: string, dataDir: string): Config['worker'] =>
  readSection(c, raw, ['worker'], worker(dataDir), cwd);

export function readServices(c: Checker, raw: unknown, cwd: string, policy: Policy): ServiceConfig[] {
  const services: ServiceConfig[] = [];
  if (raw === undefined || raw === null) {
    c.problem(['services'], 'is required: list the services selfheal may restart');
    return services;
  }
  if (!Array.isArray(raw)) {
    c.problem(['services'], 'must be a list of { name, host, manager, policy }');
    return services;
  }
  const seen = new Map<string, number>();
  // One unit on one host has one budget: two entries for it would each allow the full budget.
  const seenUnits = new Map<string, number>();
  const indexOf = new Map<ServiceConfig, number>();
  raw.forEach((s, i) => {
    const path = ['services', i];
    const so = readEntry(c, s, path, SERVICE, cwd);
    if (!so) return;
    const { name, host, unit, manager } = so;
    const svcPolicy = readPolicy(c, so.policy, [...path, 'policy'], cwd, policy);
    const dependsOn = readDependsOn(c, so.dependsOn, [...path, 'dependsOn'], host);
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
        [...path, (s as Obj).unit !== undefined ? 'unit' : 'name'],
        `unit ${show(fullUnit)} on host ${show(host)} is already guarded by services[${seenUnits.get(unitKey)}]; ` +
          'one unit gets one entry (two entries would give it two restart budgets)',
      );
      return;
    }
    seenUnits.set(unitKey, i);
    services.push({ name, host, unit: fullUnit, manager, policy: svcPolicy, dependsOn });
    indexOf.set(services[services.length - 1], i);
  });
  checkDependencies(
    c,
    services.map((s) => ({ ...s, index: indexOf.get(s)! })),
  );
  return services;
}
