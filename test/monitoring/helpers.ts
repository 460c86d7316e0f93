// Shared by the monitoring-as-code tests: repo paths, running the real tools with argv, YAML files.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync, rmSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { after } from 'node:test';
import { parse } from 'yaml';
import { tempDir } from '../helpers/config';

export const ROOT = resolve(__dirname, '..', '..');

/** Absolute path of a file in the repository. */
export const repo = (...parts: string[]): string => join(ROOT, ...parts);

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const scratchDirs: string[] = [];
after(() => {
  for (const dir of scratchDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A temporary folder, removed when the test file is done. */
export function scratchDir(prefix: string): string {
  const dir = tempDir(prefix);
  scratchDirs.push(dir);
  return dir;
}

/** Runs a program with argv (no shell) and returns its exit code and output. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): RunResult {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 30_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The full path of an executable on PATH, or null. */
export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Like which(), but a missing tool fails the test with the package to install. */
export function tool(cmd: string, pkg: string): string {
  const p = which(cmd);
  if (!p) throw new Error(`${cmd} is not installed (apt-get install ${pkg})`);
  return p;
}

/** Formats a run for an assertion message. */
export function explain(r: RunResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

export function readYaml<T = unknown>(...parts: string[]): T {
  return parse(readFileSync(repo(...parts), 'utf8')) as T;
}

export interface AlertingRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleFile {
  groups: { name: string; rules: AlertingRule[] }[];
}

export const RULES_FILE = 'monitoring/prometheus/selfhealing_rules.yml';

export function allRules(): AlertingRule[] {
  return readYaml<RuleFile>(RULES_FILE).groups.flatMap((g) => g.rules);
}

/** The services of the shipped homelab example, as `host/name`. */
export function exampleServices(): { name: string; host: string }[] {
  return readYaml<{ services: { name: string; host: string }[] }>('examples/selfheal.yaml').services.map((s) => ({
    name: s.name,
    host: s.host,
  }));
}

interface StaticConfig {
  targets: string[];
  labels?: Record<string, string>;
}

export interface PrometheusConfig {
  global: { scrape_interval: string; evaluation_interval: string };
  rule_files: string[];
  alerting: { alertmanagers: { static_configs: StaticConfig[] }[] };
  scrape_configs: { job_name: string; metrics_path?: string; static_configs: StaticConfig[] }[];
}
