// Generators of hostile alert input for the property-based tests (fast-check): label values that
// try to escape into a shell, an option parser or a path, NUL and odd Unicode, prototype keys, very
// long strings, near-misses of configured names, duplicate fingerprints and one alert name both
// firing and resolved, on top of plain random strings. And a reference model of what intake may act on.
import fc from 'fast-check';
import type { Config } from '../../src/config/config';

/**
 * The seed and size of one test file's properties: FC_SEED and FC_NUM_RUNS override them; otherwise a
 * random seed and `defaultRuns`. Each property derives its own seed from it.
 */
export function fcSettings(defaultRuns: number): { seed: number; numRuns: number } {
  const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : Math.floor(Math.random() * 0x7fffffff);
  const numRuns = process.env.FC_NUM_RUNS ? Number(process.env.FC_NUM_RUNS) : defaultRuns;
  if (!Number.isSafeInteger(seed) || !Number.isSafeInteger(numRuns) || numRuns < 1) {
    throw new Error(
      `FC_SEED and FC_NUM_RUNS must be integers (got ${process.env.FC_SEED}, ${process.env.FC_NUM_RUNS})`,
    );
  }
  return { seed, numRuns };
}

export const SHELL = [
  'a.service; reboot',
  '$(touch /tmp/selfheal-pwned)',
  '`id`',
  'x | cat /etc/passwd',
  'x && rm -rf /',
  'x > /tmp/out',
  "x' OR '1'='1",
  'x\nsystemctl poweroff',
  'a.service\r\n',
  '${IFS}reboot',
  '*',
  '?.service',
  '~root',
  'a.service #',
  '\\x00',
];
export const OPTIONS = ['-', '--', '--now', '-h', '--help', '--no-block', '-a.service', '--signal=KILL', '-.service'];
export const PATHS = [
  '..',
  '.',
  '../..',
  '../../etc/passwd',
  './a.service',
  'a/../b.service',
  '/etc/shadow',
  'a\\b.service',
  '%2e%2e%2f',
  '..%2f..%2f',
  '.hidden.service',
];
export const NULS = ['\u0000', 'a.service\u0000', '\u0000a.service', 'a\u0000.service', 'jira-worker.service\u0000;id'];
/** Strings that are not what they look like: lone surrogates, BOM, RTL override, homoglyphs, zero-width. */
export const ODD_UNICODE = [
  '\uD800',
  '\uDFFF',
  'a\uD800b.service',
  '\uFFFD',
  '\uFEFFjira-worker.service',
  'Ã©',
  'a\u202Eecivres.a',
  '\u0430.service', // Cyrillic a
  '\uFF41.service', // fullwidth a
  '\u200Bjira-worker.service',
  'e\u0301',
  '\u{1D51E}.service',
  '\u0085',
  '\u2028',
];
export const PROTO_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  'valueOf',
  '__defineGetter__',
  '__lookupGetter__',
];
export const HOSTILE = [...SHELL, ...OPTIONS, ...PATHS, ...NULS, ...ODD_UNICODE, ...PROTO_KEYS];

/** Everything a label value could be, weighted towards names that matter. */
export function labelValue(known: readonly string[] = []): fc.Arbitrary<string> {
  const random: fc.WeightedArbitrary<string>[] = [
    { weight: 3, arbitrary: fc.constantFrom(...HOSTILE) },
    { weight: 2, arbitrary: fc.string({ maxLength: 24 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
    // Long: up to the schema's 4096 per value, and a little past it (a 400 for the whole payload).
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 4200 }).map((n) => 'x'.repeat(n)) },
  ];
  if (known.length === 0) return fc.oneof(...random);
  const nearMiss = fc
    .tuple(
      fc.constantFrom(...known),
      fc.constantFrom<(s: string) => string>(
        (s) => ` ${s}`,
        (s) => `${s} `,
        (s) => s.toUpperCase(),
        (s) => `-${s}`,
        (s) => `${s};`,
        (s) => `${s}/..`,
        (s) => `${s}\u0000`,
        (s) => `../${s}`,
        (s) => s.slice(0, -1),
        (s) => `${s}${s}`,
        (s) => s.replace('.', '\u2024'),
      ),
    )
    .map(([s, f]) => f(s));
  return fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...known) }, { weight: 2, arbitrary: nearMiss }, ...random);
}

export interface Universe {
  services: readonly string[];
  hosts: readonly string[];
  alertnames: readonly string[];
}

export function universeOf(config: Config): Universe {
  return {
    services: [...new Set(config.services.map((s) => s.name))],
    hosts: [...new Set(config.services.map((s) => s.host))],
    alertnames: ['ServiceStalled', 'ServiceDown', 'UnitInactive', ...config.alerts.ignoreAlertnames],
  };
}

function hostValue(u: Universe): fc.Arbitrary<string> {
  return fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...u.hosts) }, { weight: 1, arbitrary: labelValue(u.hosts) });
}

function instanceValue(u: Universe): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom(...u.hosts).map((h) => `${h}:9100`),
    fc.constantFrom('[::1]:9100', '[fe80::1%eth0]:9100', ':9100', 'web1:metrics', 'web1:9100:9100', 'web1:'),
    labelValue(u.hosts),
  );
}

// Mostly the names that matter: each distinct name an actable alert carries stays in its workflow's
// state (issue 8, defect 7 caps that), so a flood of random names would only measure that growth.
function alertnameValue(u: Universe): fc.Arbitrary<string> {
  return fc.oneof({ weight: 30, arbitrary: fc.constantFrom(...u.alertnames) }, { weight: 1, arbitrary: labelValue() });
}

/** A label set: the labels intake reads (each may be missing), plus odd extra keys, prototype keys included. */
export function labels(u: Universe): fc.Arbitrary<Record<string, string>> {
  const opt = <T>(a: fc.Arbitrary<T>, freq = 8) => fc.option(a, { nil: undefined, freq });
  return fc
    .record({
      alertname: opt(alertnameValue(u), 10),
      service: opt(labelValue(u.services), 12),
      host: opt(hostValue(u), 4),
      instance: opt(instanceValue(u), 3),
      extra: fc.array(
        fc.tuple(
          fc.oneof(
            { weight: 1, arbitrary: fc.constantFrom(...PROTO_KEYS) },
            { weight: 6, arbitrary: fc.constantFrom('severity', 'reason', 'audience', '') },
            { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
          ),
          fc.oneof(fc.constantFrom('critical', 'selfheal', 'down'), labelValue()),
        ),
        { maxLength: 3 },
      ),
    })
    .map(({ extra, ...named }) => {
      const entries: [string, string][] = [...extra];
      for (const [k, v] of Object.entries(named)) if (v !== undefined) entries.push([k, v]);
      // fromEntries defines own properties, so "__proto__" becomes a real key of the JSON object.
      return Object.fromEntries(entries);
    });
}

export interface WireAlert {
  status: string;
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  startsAt?: string;
  endsAt?: string;
  generatorURL?: string;
  fingerprint?: string;
  [extra: string]: unknown;
}

const FINGERPRINTS = ['0000000000000001', '0000000000000002', 'deadbeefdeadbeef', ''];

export function alert(u: Universe): fc.Arbitrary<WireAlert> {
  return fc.record(
    {
      status: fc.oneof({ weight: 20, arbitrary: fc.constantFrom('firing', 'resolved') }, fc.string({ maxLength: 8 })),
      labels: labels(u),
      annotations: fc.dictionary(fc.constantFrom('summary', 'description', 'runbook_url'), labelValue(), {
        maxKeys: 2,
      }),
      startsAt: fc.oneof(
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        fc.constantFrom('0001-01-01T00:00:00Z', 'not a date', ''),
      ),
      fingerprint: fc.oneof(fc.constantFrom(...FINGERPRINTS), fc.string({ maxLength: 20 })),
      generatorURL: fc.constantFrom('http://prometheus:9090/graph', 'javascript:alert(1)'),
    },
    { requiredKeys: ['status', 'labels'] },
  );
}

/** One alert name of one configured service, repeated: firing and resolved mixed, fingerprints shared. */
export function sameAlertMixed(u: Universe): fc.Arbitrary<WireAlert[]> {
  return fc
    .record({
      service: fc.constantFrom(...u.services),
      host: fc.constantFrom(...u.hosts),
      alertname: fc.constantFrom('ServiceStalled', 'ServiceDown'),
      copies: fc.array(
        fc.record({
          status: fc.constantFrom('firing', 'resolved'),
          fingerprint: fc.constantFrom(...FINGERPRINTS),
          reason: fc.constantFrom('down', 'unit-inactive', 'stalled'),
        }),
        { minLength: 2, maxLength: 12 },
      ),
    })
    .map(({ service, host, alertname, copies }) =>
      copies.map((c) => ({
        status: c.status,
        labels: { alertname, service, host, reason: c.reason },
        fingerprint: c.fingerprint,
      })),
    );
}

export function alerts(u: Universe, maxLength = 24): fc.Arbitrary<WireAlert[]> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.array(alert(u), { maxLength }) },
    { weight: 1, arbitrary: sameAlertMixed(u) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(alert(u), fc.integer({ min: 2, max: 40 }))
        .map(([a, n]) => Array.from({ length: n }, () => a)),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(sameAlertMixed(u), fc.array(alert(u), { maxLength: 8 })).map(([a, b]) => [...a, ...b]),
    },
  );
}

/** Something that is not a valid v4 payload, for a 400 with the reason. */
const malformed: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, [], 'a string', 42, true, {}),
  fc.constantFrom(
    { version: '4', status: 'firing' },
    { version: '4', status: 'firing', alerts: 'nope' },
    { version: '4', status: 'firing', alerts: [null] },
    { version: '4', status: 'firing', alerts: [{ status: 'firing' }] },
    { version: '4', status: 'firing', alerts: [{ status: 'firing', labels: { service: 5 } }] },
    { version: '4', status: 'firing', alerts: [{ status: 'firing', labels: ['a'] }] },
    { version: '4', status: 'firing', alerts: [{ status: 'firing', labels: { service: null } }] },
    { version: '4', status: 'firing', alerts: [], truncatedAlerts: -1 },
  ),
  fc.jsonValue({ maxDepth: 3 }),
);

export interface WirePayload {
  body: unknown;
  /** When set, the body is sent as these bytes instead of JSON.stringify(body). */
  raw?: Buffer;
  alerts: WireAlert[] | null;
}

/** A whole webhook body: mostly version 4 with hostile alerts, sometimes malformed, sometimes not UTF-8. */
export function payload(u: Universe, maxAlerts = 24): fc.Arbitrary<WirePayload> {
  const v4 = fc
    .record({
      version: fc.oneof({ weight: 30, arbitrary: fc.constant('4') }, fc.constantFrom('3', '5', '', '4 ')),
      status: fc.constantFrom('firing', 'resolved'),
      groupKey: fc.string({ maxLength: 30 }),
      receiver: fc.constantFrom('selfheal', ''),
      extra: fc.record(
        {
          truncatedAlerts: fc.nat(5),
          externalURL: fc.constantFrom('http://alertmanager:9093', ''),
          unknownField: fc.jsonValue({ maxDepth: 1 }),
        },
        { requiredKeys: [] },
      ),
      alerts: alerts(u, maxAlerts),
      // Replace one label value's bytes with bytes that are not valid UTF-8.
      rawBytes: fc.option(fc.uint8Array({ minLength: 1, maxLength: 6, min: 0x80, max: 0xff }), { freq: 12 }),
    })
    .map(({ extra, rawBytes, alerts, ...rest }): WirePayload => {
      if (rawBytes && alerts.length) {
        const marked = alerts.map((a, i) => (i === 0 ? { ...a, labels: { ...a.labels, service: '@@RAW@@' } } : a));
        const body = { ...rest, ...extra, alerts: marked };
        const [before, after] = JSON.stringify(body).split('@@RAW@@');
        return {
          body,
          raw: Buffer.concat([Buffer.from(before), Buffer.from(rawBytes), Buffer.from(after)]),
          alerts: marked,
        };
      }
      return { body: { ...rest, ...extra, alerts }, alerts };
    });
  return fc.oneof(
    { weight: 20, arbitrary: v4 },
    { weight: 1, arbitrary: malformed.map((body): WirePayload => ({ body, alerts: null })) },
  );
}

/** `instance` without its port, as the reference model reads it (configured hosts are never IPv6). */
function modelHost(instance: string | undefined): string | undefined {
  if (!instance) return undefined;
  const m = /^(.+):(\d+)$/.exec(instance);
  return m ? m[1] : instance;
}

/**
 * The reference model: the configured (host, service) an alert may be acted on for, or null. Written
 * independently of planAlerts: own labels only, self-healing's own alerts ignored, host label else
 * instance without its port, and the (host, service) pair must be configured.
 */
export function actableTarget(config: Config, a: { labels?: unknown }): { host: string; service: string } | null {
  const labels = a.labels;
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) return null;
  if (Object.values(labels).some((v) => typeof v !== 'string')) return null;
  const own = (k: string): string | undefined =>
    Object.prototype.hasOwnProperty.call(labels, k) ? (labels as Record<string, string>)[k] : undefined;
  const alertname = own('alertname');
  if (alertname && config.alerts.ignoreAlertnames.includes(alertname)) return null;
  const service = own(config.alerts.serviceLabel);
  const host = own(config.alerts.hostLabel) || modelHost(own('instance'));
  if (!service || !host) return null;
  return config.services.some((s) => s.name === service && s.host === host) ? { host, service } : null;
}

/** The same alert in a shape the schema accepts: the hostility stays in the label values, not in the shape. */
export function schemaValid(a: WireAlert, maxValue = 4096): WireAlert {
  const cap = (r: Record<string, string> | undefined) =>
    r &&
    Object.fromEntries(
      Object.entries(r)
        .filter(([k]) => k !== '__proto__')
        .map(([k, v]) => [k, v.slice(0, maxValue)]),
    );
  return {
    ...a,
    status: a.status === 'resolved' ? 'resolved' : 'firing',
    labels: cap(a.labels)!,
    annotations: cap(a.annotations),
    startsAt: a.startsAt?.slice(0, 64),
  };
}
