// The fleet-safety sections: `fleet` (breaker thresholds, restart concurrency), `alertmanager`
// (silences honoured at the moment of acting), and the check of `services[].dependsOn` across the
// whole services list (known services, no cycles).
import {
  BREAKER_MODES,
  DEFAULT_BREAKER,
  DEFAULT_FLEET_LIMITS,
  DEFAULT_HOST_LIMITS,
  DEFAULT_LEASE_MS,
  DEFAULT_MAX_RESTARTS_IN_FLIGHT,
  DEFAULT_MAX_RESTARTS_IN_FLIGHT_PER_HOST,
  dependencyCycle,
  serviceKey,
  type ScopeLimits,
} from '../policy/fleet';
import { show, type Checker, type Obj, type Path } from './check';
import { choice, custom, duration, flag, httpUrl, integer, readSection, type Fields } from './fields';

/** A share between 0 and 1 (e.g. 0.5, or "50%"). */
const share = (key: string, d: number) =>
  custom<number>(key, (c, v, path) => {
    if (v === undefined || v === null) return d;
    const n = typeof v === 'string' && /^\d+(\.\d+)?%$/.test(v.trim()) ? parseFloat(v) / 100 : v;
    if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0 || n > 1) {
      c.problem(path, `${show(v)} must be a share between 0 and 1 (e.g. 0.5 or "50%")`);
      return d;
    }
    return n;
  });

const limits = (d: ScopeLimits) => ({
  maxOpenIncidents: integer('maxOpenIncidents', d.maxOpenIncidents, 1, 1_000_000),
  maxOpenShare: share('maxOpenShare', d.maxOpenShare),
  minServicesForShare: integer('minServicesForShare', d.minServicesForShare, 1, 1_000_000),
});

const scope = (key: string, d: ScopeLimits) =>
  custom<ScopeLimits>(key, (c, v, path, ctx) => readSection(c, v ?? {}, path, limits(d), ctx.cwd));

export const BREAKER = {
  enabled: flag('enabled', DEFAULT_BREAKER.enabled),
  mode: choice('mode', BREAKER_MODES, DEFAULT_BREAKER.mode),
  quietPeriodMs: duration('quietPeriod', DEFAULT_BREAKER.quietPeriodMs),
  fleet: scope('fleet', DEFAULT_FLEET_LIMITS),
  host: scope('host', DEFAULT_HOST_LIMITS),
};

export const FLEET = {
  breaker: custom<Fields<typeof BREAKER>>('breaker', (c, v, path, ctx) =>
    readSection(c, v ?? {}, path, BREAKER, ctx.cwd),
  ),
  maxRestartsInFlight: integer('maxRestartsInFlight', DEFAULT_MAX_RESTARTS_IN_FLIGHT, 1, 100_000),
  maxRestartsInFlightPerHost: integer('maxRestartsInFlightPerHost', DEFAULT_MAX_RESTARTS_IN_FLIGHT_PER_HOST, 1, 10_000),
  /** A restart slot whose holder never gave it back frees itself after this long. */
  leaseMs: duration('restartSlotTimeout', DEFAULT_LEASE_MS, { min: 10_000 }),
  /** How long a restart waits for the fleet coordinator's answer before holding as `breaker-unavailable`. */
  answerTimeoutMs: duration('answerTimeout', 30_000, { min: 1_000 }),
};
export type FleetConfig = Fields<typeof FLEET>;

export const ALERTMANAGER = {
  /** Alertmanager's base URL: before each restart, its API v2 is asked for active silences. */
  url: httpUrl('url', null),
  timeoutMs: duration('timeout', 5_000, { min: 100 }),
  /** Alertmanager unreachable at the moment of acting: `proceed` (with a warning in the audit log) or `hold`. */
  unreachable: choice('unreachable', ['proceed', 'hold'] as const, 'proceed'),
};
export type AlertmanagerConfig = Fields<typeof ALERTMANAGER>;

export const readFleet = (c: Checker, raw: unknown, cwd: string): FleetConfig =>
  readSection(c, raw, ['fleet'], FLEET, cwd);

export const readAlertmanager = (c: Checker, raw: unknown, cwd: string): AlertmanagerConfig =>
  readSection(c, raw, ['alertmanager'], ALERTMANAGER, cwd);

/** `dependsOn` of one service entry: `[{ service, host? }]` (a plain string names a service on the same host). */
export function readDependsOn(c: Checker, raw: unknown, path: Path, host: string | null): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    c.problem(path, 'must be a list of { service, host? }');
    return [];
  }
  const out: string[] = [];
  raw.forEach((d, i) => {
    const o: Obj | null = typeof d === 'string' ? { service: d } : c.object(d, [...path, i], ['service', 'host']);
    if (!o) return;
    const svc = c.string(o.service, [...path, i, 'service'], null);
    const h = c.string(o.host, [...path, i, 'host'], host);
    if (svc === null) c.problem([...path, i, 'service'], 'is required (a guarded service)');
    else if (h !== null) out.push(serviceKey(h, svc));
  });
  return out;
}

/** Every dependency must be a guarded service, and no chain may lead back to where it started. */
export function checkDependencies(
  c: Checker,
  services: { name: string; host: string; dependsOn: string[]; index: number }[],
): void {
  const known = new Set(services.map((s) => serviceKey(s.host, s.name)));
  const deps: Record<string, string[]> = {};
  for (const s of services) {
    const key = serviceKey(s.host, s.name);
    deps[key] = s.dependsOn;
    s.dependsOn.forEach((d, i) => {
      if (d === key) c.problem(['services', s.index, 'dependsOn', i], 'a service cannot depend on itself');
      else if (!known.has(d)) {
        const [h, ...rest] = d.split('/');
        c.problem(
          ['services', s.index, 'dependsOn', i],
          `${show(rest.join('/'))} on host ${show(h)} is not a guarded service`,
        );
      }
    });
  }
  const cycle = dependencyCycle(
    Object.fromEntries(Object.entries(deps).map(([k, v]) => [k, v.filter((d) => d !== k)])),
  );
  if (cycle) {
    const first = services.find((s) => serviceKey(s.host, s.name) === cycle[0])!;
    c.problem(['services', first.index, 'dependsOn'], `dependencies go round in a circle: ${cycle.join(' → ')}`);
  }
}
