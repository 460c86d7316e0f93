// The one YAML configuration file: parsed, `${ENV}`-substituted and validated into a typed,
// fully-defaulted Config. Every problem is reported with the key at fault (and its line).
// The keys and defaults are in schema.ts, the section readers in sections.ts.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { Checker, ConfigError, lineFinder, substituteEnv } from './check';
import { readAlertmanager, readFleet } from './fleet';
import { SECTIONS, type Config } from './schema';
import {
  readAlerts,
  readApi,
  readAudit,
  readEscalation,
  readPolicy,
  readPrometheus,
  readServices,
  readTemporal,
  readWorker,
} from './sections';

export { ConfigError, type ConfigProblem } from './check';
export { findService, servicesOnHost } from './lookup';
export {
  MANAGER_KINDS,
  type Config,
  type ManagerKind,
  type ServiceConfig,
  type TlsConfig,
  type WebhookConfig,
} from './schema';

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
  const c = new Checker(lineFinder(doc, lineCounter));
  const top = c.object(substituteEnv(doc.toJS() ?? {}, [], env, c), [], SECTIONS);
  if (!top) throw new ConfigError(source, c.problems);

  const temporal = readTemporal(c, top.temporal, cwd);
  const api = readApi(c, top.api, cwd);
  const prometheus = readPrometheus(c, top.prometheus, cwd);
  const alerts = readAlerts(c, top.alerts, cwd);
  const policy = readPolicy(c, top.policy, ['policy'], cwd);
  const audit = readAudit(c, top.audit, cwd, temporal.dataDir);
  const escalation = readEscalation(c, top.escalation, cwd);
  const worker = readWorker(c, top.worker, cwd, temporal.dataDir);
  const fleet = readFleet(c, top.fleet, cwd);
  const alertmanager = readAlertmanager(c, top.alertmanager, cwd);
  const services = readServices(c, top.services, cwd, policy);
  if (c.problems.length) throw new ConfigError(source, c.problems);
  return {
    source,
    temporal,
    api,
    prometheus,
    alerts,
    policy,
    audit,
    escalation,
    worker,
    fleet,
    alertmanager,
    services,
  };
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
