// Everything real, on this machine, for the end-to-end scenarios and the demo:
// - a private systemd user manager running crypto-agent@<PAIR>.service units (test/e2e/agent),
// - the real Prometheus with the shipped rules, unchanged, and an overlay of monitoring/prometheus.yml,
// - the real Alertmanager with an overlay of monitoring/alertmanager.yml,
// - the real `selfheal start` (embedded Temporal dev server, workers, API) as a child process,
// - HTTP sinks for selfheal's escalation webhook and Alertmanager's admin receiver.
// Free loopback ports only, every wait bounded, and stop() ends every process it started, also when
// a scenario failed (plus a synchronous last resort on process exit and on SIGINT/SIGTERM).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { parse, stringify } from 'yaml';
import type { AuditRecord } from '../../src/activities/audit';
import { stateQuery, workflowIdFor, type ServiceStateView } from '../../src/workflows/definitions';
import { alertmanagerOverlay } from '../helpers/alertmanager';
import { ROOT } from '../helpers/cli';
import { freePorts } from '../helpers/ports';
import { UserSystemd, type UnitState } from '../helpers/systemd';
import { waitFor } from '../helpers/wait';
import { WebhookSink } from '../helpers/webhook-sink';

export const AGENT = join(__dirname, 'agent', 'crypto-agent.mjs');
const PROMETHEUS_BIN = '/usr/bin/prometheus';
const ALERTMANAGER_BIN = '/usr/bin/prometheus-alertmanager';

export interface HarnessOptions {
  /** The host selfheal serves (`--host`) and the `host` label of every target. */
  host?: string;
  /** Instance names of crypto-agent@<name>.service units that run normally, e.g. BTC_USDT. */
  agents: string[];
  /** Instances that exit 1 at every start. */
  failing?: string[];
  /** Policy overrides on top of the shortened test windows (config keys, e.g. { cooldown: '10s' }). */
  policy?: Record<string, string | number>;
  /** The `fleet` section; by default the breaker is off (scenarios that stop several units at once are not about it). */
  fleet?: Record<string, unknown>;
  /** Progress lines (default: a log file in the temp folder, and stderr with SELFHEAL_E2E_VERBOSE=1). */
  log?: (line: string) => void;
  /** Install SIGINT/SIGTERM handlers that kill everything (default true; the demo brings its own). */
  signalHandlers?: boolean;
  /** Set api.recordDeliveries to `deliveriesFile` (for `selfheal simulate --alerts`). */
  recordDeliveries?: boolean;
  /** More keys of an instance's `services` entry (e.g. `policy`, `dependsOn`). */
  services?: Record<string, Record<string, unknown>>;
  /** Set `alertmanager.url` to this test's Alertmanager, so silences are honoured at the moment of acting. */
  silences?: boolean;
}

/**
 * The windows are short so an incident takes about 45 s: 30 s of the rule's `for`, a few seconds of
 * scrape, evaluation and Alertmanager grouping, 5 s of validation, a restart and 2 s of stability.
 * maxRestartsPerHour and maxConsecutiveFailures are the production values.
 */
export const TEST_POLICY: Record<string, string | number> = {
  validationWindow: '5s',
  cooldown: '5s',
  maxRestartsPerHour: 3,
  maxConsecutiveFailures: 2,
  verifyTimeout: '30s',
  verifyStableFor: '2s',
  hostTimeout: '5s',
};

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
  activeAt?: string;
  value?: string;
}

export interface AmAlert {
  labels: Record<string, string>;
  status: { state: string; inhibitedBy: string[]; silencedBy: string[] };
  receivers: { name: string }[];
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Parses the Prometheus text format (enough of it for the agent's and selfheal's /metrics). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function tailOf(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}

/** A long-running child in its own process group, its stdout and stderr in a log file. */
class Child {
  private readonly exited: Promise<void>;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((r) => {
      child.once('exit', () => r());
      // A program that cannot be spawned never emits 'exit'.
      child.once('error', (err) => {
        writeFileSync(logFile, `cannot start ${name}: ${err.message}\n`, { flag: 'a' });
        r();
      });
    });
  }

  static spawn(
    name: string,
    cmd: string,
    args: string[],
    opts: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string },
  ): Child {
    const fd = openSync(opts.logFile, 'a');
    try {
      // detached: its own process group, so a Ctrl-C in the demo's terminal reaches only the demo,
      // which stops everything in order; and the group can be killed as a whole as a last resort.
      const child = spawn(cmd, args, {
        cwd: opts.cwd ?? ROOT,
        env: opts.env,
        detached: true,
        stdio: ['ignore', fd, fd],
      });
      return new Child(name, child, opts.logFile);
    } finally {
      closeSync(fd);
    }
  }

  get running(): boolean {
    return this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  tail(lines = 30): string {
    return tailOf(this.logFile, lines);
  }

  /** The last lines that say something: without the HTTP access log of every scrape. */
  interestingTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8')
        .trimEnd()
        .split('\n')
        .filter((l) => !/"msg":"(incoming request|request completed)"/.test(l))
        .slice(-lines)
        .join('\n');
    } catch {
      return '(no output)';
    }
  }

  private killGroup(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // the group is already gone
    }
  }

  /** `signal` to the process itself, SIGKILL to its group after `graceMs`; then SIGKILL whatever it left behind. */
  async stop(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    if (this.running) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.killGroup('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    // e.g. the Temporal dev server that `selfheal start` runs, had selfheal not stopped it.
    this.killGroup('SIGKILL');
  }

  /** Synchronous last resort. */
  killNow(): void {
    this.killGroup('SIGKILL');
  }
}

/** Whether `pid` is a crypto agent whose state folder is `agentsDir` (read from /proc, so a reused pid is not). */
export function isAgentOf(pid: number, agentsDir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return argv.includes(AGENT) && env.includes(`AGENT_STATE_DIR=${agentsDir}`);
  } catch {
    return false;
  }
}

// Harnesses still running, for the synchronous last resort when the process exits without stop().
const live = new Set<Harness>();
let exitHookInstalled = false;
let signalHooksInstalled = false;

function installHooks(signals: boolean): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const h of live) h.killNow();
    });
  }
  if (signals && !signalHooksInstalled) {
    signalHooksInstalled = true;
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        for (const h of live) h.killNow();
        process.exit(sig === 'SIGINT' ? 130 : 143);
      });
    }
  }
}

export class Harness {
  readonly dir: string;
  readonly host: string;
  readonly agents: string[];
  readonly failing: string[];
  readonly configFile: string;
  readonly auditFile: string;
  /** Where selfheal records accepted webhook deliveries, when asked to (HarnessOptions.recordDeliveries). */
  readonly deliveriesFile: string | null;
  readonly token = randomBytes(24).toString('hex');
  readonly adminToken = randomBytes(24).toString('hex');
  /** selfheal's escalation webhook receiver. */
  sink!: WebhookSink;
  /** Alertmanager's admin receiver. */
  adminSink!: WebhookSink;
  systemd: UserSystemd | null = null;
  client!: Client;
  apiUrl = '';
  promUrl = '';
  amUrl = '';
  uiUrl = '';
  temporalAddress = '';
  private readonly ports = new Map<string, number>();
  private selfheal: Child | null = null;
  private prometheus: Child | null = null;
  private alertmanager: Child | null = null;
  private connection: Connection | null = null;
  private stopping: Promise<void> | null = null;
  private readonly logLine: (line: string) => void;
  private readonly policy: Record<string, string | number>;
  private readonly fleet: Record<string, unknown>;
  private readonly serviceExtras: Record<string, Record<string, unknown>>;
  private readonly silences: boolean;
  private readonly started = Date.now();

  private constructor(opts: HarnessOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'selfheal-e2e-'));
    this.host = opts.host ?? 'homelab';
    this.agents = opts.agents;
    this.failing = opts.failing ?? [];
    this.configFile = join(this.dir, 'selfheal.yaml');
    this.auditFile = join(this.dir, 'audit.log');
    this.deliveriesFile = opts.recordDeliveries ? join(this.dir, 'deliveries.jsonl') : null;
    this.policy = { ...TEST_POLICY, ...opts.policy };
    this.fleet = opts.fleet ?? { breaker: { enabled: false } };
    this.serviceExtras = opts.services ?? {};
    this.silences = opts.silences ?? false;
    const harnessLog = join(this.dir, 'harness.log');
    this.logLine =
      opts.log ??
      ((line) => {
        const text = `[${((Date.now() - this.started) / 1000).toFixed(1).padStart(6)}s] ${line}\n`;
        writeFileSync(harnessLog, text, { flag: 'a' });
        if (process.env.SELFHEAL_E2E_VERBOSE === '1') process.stderr.write(text);
      });
  }

  /** Brings everything up; on any failure, stops what already runs and throws with the logs. */
  static async start(opts: HarnessOptions): Promise<Harness> {
    const h = new Harness(opts);
    installHooks(opts.signalHandlers ?? true);
    live.add(h);
    try {
      await h.bringUp();
      return h;
    } catch (err) {
      const diag = h.diagnostics();
      await h.stop();
      throw new Error(`${(err as Error).message}\n${diag}`, { cause: err });
    }
  }

  log(line: string): void {
    this.logLine(line);
  }

  // ---- names and addresses -----------------------------------------------------------------------

  get instances(): string[] {
    return [...this.agents, ...this.failing];
  }

  /** The systemd unit (and selfheal service name) of an agent instance. */
  service(instance: string): string {
    return `crypto-agent@${instance}.service`;
  }

  workflowId(instance: string): string {
    return workflowIdFor(this.host, this.service(instance));
  }

  workflowUrl(instance: string): string {
    return `${this.uiUrl}/namespaces/default/workflows/${encodeURIComponent(this.workflowId(instance))}`;
  }

  agentUrl(instance: string): string {
    return `http://127.0.0.1:${this.ports.get(`agent:${instance}`)}`;
  }

  private get agentsDir(): string {
    return join(this.dir, 'agents');
  }

  // ---- bring-up ----------------------------------------------------------------------------------

  private async bringUp(): Promise<void> {
    for (const bin of [PROMETHEUS_BIN, ALERTMANAGER_BIN]) {
      if (!existsSync(bin))
        throw new Error(`${bin} is not installed (apt-get install prometheus prometheus-alertmanager)`);
    }
    const names = ['temporal', 'ui', 'api', 'prometheus', 'alertmanager', ...this.instances.map((i) => `agent:${i}`)];
    const ports = await freePorts(names.length);
    names.forEach((n, i) => this.ports.set(n, ports[i]));
    this.apiUrl = `http://127.0.0.1:${this.ports.get('api')}`;
    this.promUrl = `http://127.0.0.1:${this.ports.get('prometheus')}`;
    this.amUrl = `http://127.0.0.1:${this.ports.get('alertmanager')}`;
    this.uiUrl = `http://127.0.0.1:${this.ports.get('ui')}`;
    this.temporalAddress = `127.0.0.1:${this.ports.get('temporal')}`;

    this.sink = await WebhookSink.start();
    this.adminSink = await WebhookSink.start();

    await this.startAgents();
    await this.startSelfheal();
    await this.startPrometheus();
    await this.startAlertmanager();
    this.connection = await Connection.connect({ address: this.temporalAddress });
    this.client = new Client({ connection: this.connection, namespace: 'default' });

    // Ready means Prometheus scrapes every agent that runs, and selfheal's API.
    await this.until(
      async () => {
        const up = await this.query('up');
        const ok = (job: string, service?: string) =>
          up.some((s) => s.labels.job === job && (!service || s.labels.service === service) && s.value === 1);
        return ok('selfheal') && this.agents.every((a) => ok('crypto-agent', this.service(a)));
      },
      'Prometheus to scrape selfheal and every agent',
      60_000,
    );
    this.log(`ready: Prometheus ${this.promUrl}, Alertmanager ${this.amUrl}, selfheal ${this.apiUrl}`);
  }

  private async startAgents(): Promise<void> {
    this.log('starting the systemd user manager');
    this.systemd = await UserSystemd.start();
    mkdirSync(this.agentsDir);
    for (const i of this.instances) {
      const env = [`AGENT_PORT=${this.ports.get(`agent:${i}`)}`];
      if (this.failing.includes(i)) env.push('AGENT_FAIL=1');
      writeFileSync(join(this.agentsDir, `${i}.env`), env.join('\n') + '\n');
    }
    // systemd unit syntax: `%` starts a specifier, and quotes keep paths with spaces whole.
    const q = (p: string) => `"${p.replaceAll('%', '%%')}"`;
    await this.systemd.addUnit(
      'crypto-agent@.service',
      [
        '[Unit]',
        'Description=crypto agent %i (selfheal end-to-end test)',
        // selfheal restarts these units; a unit that fails at every start must not hit the start limit.
        'StartLimitIntervalSec=0',
        '',
        '[Service]',
        'Type=simple',
        'Environment=AGENT_INSTANCE=%i',
        `Environment=${q(`AGENT_STATE_DIR=${this.agentsDir}`)}`,
        // The per-instance port map (and AGENT_FAIL=1 for the instance that fails at every start).
        `EnvironmentFile=${this.agentsDir.replaceAll('%', '%%')}/%i.env`,
        `ExecStart=${q(process.execPath)} ${q(AGENT)}`,
        // No restart by systemd: selfheal is what restarts them.
        'Restart=no',
        'TimeoutStopSec=5',
        '',
      ].join('\n'),
    );
    // `systemctl start` of a unit that exits at once still succeeds (Type=simple): it just ends up failed.
    await this.systemd.systemctl('start', '--', ...this.instances.map((i) => this.service(i)));
    for (const i of this.agents) {
      await this.until(
        async () => (await fetch(`${this.agentUrl(i)}/metrics`)).ok,
        `agent ${i} to serve /metrics`,
        15_000,
      );
    }
    for (const i of this.failing) {
      await this.until(async () => (await this.unit(i)).ActiveState === 'failed', `${i} to fail its start`, 15_000);
    }
    this.log(`agents running: ${this.agents.join(', ')}; failing: ${this.failing.join(', ') || 'none'}`);
  }

  private async startSelfheal(): Promise<void> {
    const tokenFile = join(this.dir, 'token');
    writeFileSync(tokenFile, this.token, { mode: 0o600 });
    const config = {
      temporal: {
        dataDir: join(this.dir, 'selfheal-data'),
        port: this.ports.get('temporal'),
        uiPort: this.ports.get('ui'),
      },
      api: {
        listen: `127.0.0.1:${this.ports.get('api')}`,
        token: this.token,
        adminToken: this.adminToken,
        ...(this.deliveriesFile ? { recordDeliveries: this.deliveriesFile } : {}),
      },
      prometheus: { url: this.promUrl },
      alerts: { serviceLabel: 'service', hostLabel: 'host' },
      policy: this.policy,
      fleet: this.fleet,
      // Known before Alertmanager starts (its port is picked up front); asked only at the moment of acting.
      ...(this.silences ? { alertmanager: { url: `http://127.0.0.1:${this.ports.get('alertmanager')}` } } : {}),
      audit: { file: this.auditFile },
      escalation: { webhooks: [{ url: this.sink.url }] },
      // No extra listeners: everything this test reads is on the API's /metrics.
      worker: { temporalMetrics: '', metrics: '' },
      services: this.instances.map((i) => ({
        name: this.service(i),
        host: this.host,
        manager: 'systemd-user',
        ...this.serviceExtras[i],
      })),
    };
    writeFileSync(this.configFile, stringify(config));
    this.log(`starting selfheal (config ${this.configFile})`);
    this.selfheal = Child.spawn(
      'selfheal',
      process.execPath,
      [join(ROOT, 'bin', 'selfheal.js'), 'start', '--config', this.configFile, '--host', this.host],
      { logFile: join(this.dir, 'selfheal-start.log'), env: this.selfhealEnv() },
    );
    const sh = this.selfheal;
    await waitFor(
      () => {
        if (!sh.running) throw new Error(`selfheal start exited:\n${sh.tail(40)}`);
        return readFileSync(sh.logFile, 'utf8').includes('selfheal is running');
      },
      { timeoutMs: 150_000, intervalMs: 250, what: `the "selfheal is running" banner` },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- selfheal start output:\n${sh.tail(40)}`);
    });
    await this.until(async () => (await fetch(`${this.apiUrl}/readyz`)).ok, 'selfheal /readyz', 30_000);
    this.log(`selfheal is running: API ${this.apiUrl}, Temporal UI ${this.uiUrl}`);
  }

  /** Environment of `selfheal` child processes (start and the CLI). */
  private selfhealEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      // Run the TypeScript sources through tsx, not a possibly stale dist/ build.
      SELFHEAL_FROM_SOURCE: '1',
      // `systemctl --user` in the host worker reaches the private user manager.
      XDG_RUNTIME_DIR: this.systemd!.runtimeDir,
      SELFHEAL_LOG_LEVEL: process.env.SELFHEAL_LOG_LEVEL ?? 'INFO',
    };
    // Not a test process: keep node:test's and the caller's Node flags out of it.
    delete env.NODE_TEST_CONTEXT;
    delete env.NODE_OPTIONS;
    delete env.SELFHEAL_CONFIG;
    delete env.SELFHEAL_HOST;
    return env;
  }

  /** monitoring/prometheus.yml with only the intervals shortened and the targets pointed at this test's processes. */
  private prometheusOverlay(): string {
    interface Job {
      job_name: string;
      static_configs: { targets: string[]; labels?: Record<string, string> }[];
    }
    const p = parse(readFileSync(join(ROOT, 'monitoring', 'prometheus.yml'), 'utf8')) as {
      global: Record<string, string>;
      rule_files: string[];
      alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
      scrape_configs: Job[];
    };
    p.global.scrape_interval = '1s';
    p.global.evaluation_interval = '1s';
    // The shipped rule file itself, unchanged (rule_files are relative to the shipped config).
    p.rule_files = p.rule_files.map((f) => join(ROOT, 'monitoring', f));
    p.alerting.alertmanagers[0].static_configs[0].targets = [`127.0.0.1:${this.ports.get('alertmanager')}`];
    const job = (name: string) => {
      const j = p.scrape_configs.find((x) => x.job_name === name);
      if (!j) throw new Error(`monitoring/prometheus.yml has no job ${name}`);
      return j;
    };
    job('selfheal').static_configs = [{ targets: [`127.0.0.1:${this.ports.get('api')}`] }];
    const agents = job('crypto-agent');
    agents.static_configs = this.instances.map((i) => ({
      targets: [`127.0.0.1:${this.ports.get(`agent:${i}`)}`],
      labels: { host: this.host, service: this.service(i) },
    }));
    // Jobs for processes this machine does not run here: the split-deployment metrics listeners
    // (disabled in this config), node_exporter and jira-worker. Left in, they would scrape whatever
    // else happens to listen on those fixed ports.
    const keep = new Set(['selfheal', 'crypto-agent']);
    p.scrape_configs = p.scrape_configs.filter((j) => keep.has(j.job_name));
    return stringify(p);
  }

  private async startPrometheus(): Promise<void> {
    const file = join(this.dir, 'prometheus.yml');
    writeFileSync(file, this.prometheusOverlay());
    this.log('starting Prometheus');
    this.prometheus = Child.spawn(
      'prometheus',
      PROMETHEUS_BIN,
      [
        `--config.file=${file}`,
        `--storage.tsdb.path=${join(this.dir, 'prometheus-data')}`,
        `--web.listen-address=127.0.0.1:${this.ports.get('prometheus')}`,
      ],
      { logFile: join(this.dir, 'prometheus.log') },
    );
    await this.ready(this.prometheus, 'Prometheus', `${this.promUrl}/-/ready`);
  }

  /** Waits for a child's readiness endpoint; fails at once, with its log, if it exits. */
  private async ready(child: Child, name: string, url: string): Promise<void> {
    await this.until(
      async () => {
        if (!child.running) throw new Error(`${name} exited:\n${child.tail()}`);
        return (await fetch(url)).ok;
      },
      `${name} ready`,
      30_000,
    );
  }

  private async startAlertmanager(): Promise<void> {
    const file = join(this.dir, 'alertmanager.yml');
    writeFileSync(
      file,
      alertmanagerOverlay({
        webhookUrl: `${this.apiUrl}/selfheal/trigger`,
        tokenFile: join(this.dir, 'token'),
        adminUrl: `${new URL(this.adminSink.url).origin}/admin`,
      }),
    );
    this.log('starting Alertmanager');
    this.alertmanager = Child.spawn(
      'alertmanager',
      ALERTMANAGER_BIN,
      [
        `--config.file=${file}`,
        `--storage.path=${join(this.dir, 'alertmanager-data')}`,
        `--web.listen-address=127.0.0.1:${this.ports.get('alertmanager')}`,
        // Empty: no clustering (no gossip port).
        '--cluster.listen-address=',
      ],
      { logFile: join(this.dir, 'alertmanager.log') },
    );
    await this.ready(this.alertmanager, 'Alertmanager', `${this.amUrl}/-/ready`);
  }

  // ---- reading real state ------------------------------------------------------------------------

  /** waitFor with the logs of every part in the timeout message. */
  async until<T>(
    probe: () => Promise<T> | T,
    what: string,
    timeoutMs: number,
    intervalMs = 250,
  ): Promise<NonNullable<T>> {
    try {
      return await waitFor(probe, { timeoutMs, intervalMs, what });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.diagnostics()}`, { cause: err });
    }
  }

  /**
   * Polls `instance`'s workflow state until `done`, recording each phase it was seen in (in order) and
   * the first state with an open incident; a timeout names the phases seen and the last state.
   */
  async watch(
    instance: string,
    done: (s: ServiceStateView) => boolean,
    what: string,
    timeoutMs: number,
  ): Promise<{ state: ServiceStateView; phases: string[]; firstIncident: ServiceStateView | null }> {
    const phases: string[] = [];
    let firstIncident: ServiceStateView | null = null;
    let last: ServiceStateView | null = null;
    try {
      const state = await this.until(
        async () => {
          const s = (last = await this.state(instance));
          if (!s) return null;
          if (phases[phases.length - 1] !== s.phase) phases.push(s.phase);
          if (s.incident && !firstIncident) firstIncident = s;
          return done(s) ? s : null;
        },
        what,
        timeoutMs,
        150,
      );
      return { state, phases, firstIncident };
    } catch (err) {
      const seen = `phases seen: ${phases.join(' → ') || 'none'}; last state: ${JSON.stringify(last)}`;
      throw new Error(`${(err as Error).message.split('\n')[0]}\n${seen}\n${(err as Error).message}`, { cause: err });
    }
  }

  /** Waits until the alert resolved everywhere: not firing in Prometheus, and the workflow got the resolved notification. */
  async waitResolved(instance: string): Promise<void> {
    await this.until(
      async () => {
        const firing = await this.promAlert('ServiceStalled', { service: this.service(instance) }, 'firing');
        const s = await this.state(instance);
        return !firing && s?.firingAlerts.length === 0;
      },
      `${instance}: ServiceStalled resolved in Prometheus and in the workflow`,
      60_000,
    );
  }

  /** Tails of every log, for assertion messages. */
  diagnostics(lines = 25): string {
    const parts = [`--- temp folder ${this.dir}`];
    for (const c of [this.selfheal, this.prometheus, this.alertmanager]) {
      if (c)
        parts.push(`--- ${c.name} (${c.running ? 'running' : 'exited'}), last lines:\n${c.interestingTail(lines)}`);
    }
    parts.push(`--- audit log, last lines:\n${tailOf(this.auditFile, lines)}`);
    return parts.join('\n');
  }

  systemctl(...args: string[]): Promise<string> {
    return this.systemd!.systemctl(...args);
  }

  unit(instance: string): Promise<UnitState> {
    return this.systemd!.show(this.service(instance));
  }

  /** How many times systemd started the agent (each start appends a line). */
  starts(instance: string): number {
    try {
      return readFileSync(join(this.agentsDir, `${instance}.starts`), 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean).length;
    } catch {
      return 0;
    }
  }

  /** Tells the agent to stall: it stays up but its progress stops, backdated by 10 minutes. */
  async stall(instance: string): Promise<void> {
    const res = await fetch(`${this.agentUrl(instance)}/stall`, { method: 'POST' });
    if (!res.ok) throw new Error(`POST /stall to ${instance}: HTTP ${res.status}`);
  }

  async agentMetrics(instance: string): Promise<Sample[]> {
    const res = await fetch(`${this.agentUrl(instance)}/metrics`, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) throw new Error(`GET /metrics of ${instance}: HTTP ${res.status}`);
    return parseMetrics(await res.text());
  }

  /** The agent's own service_last_progress_timestamp_seconds. */
  async progress(instance: string): Promise<number> {
    const s = (await this.agentMetrics(instance)).find((m) => m.name === 'service_last_progress_timestamp_seconds');
    if (!s) throw new Error(`${instance} exports no progress gauge`);
    return s.value;
  }

  /** selfheal's own /metrics. */
  async selfhealMetrics(): Promise<Sample[]> {
    const res = await fetch(`${this.apiUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`GET /metrics of selfheal: HTTP ${res.status}`);
    return parseMetrics(await res.text());
  }

  /** The workflow's `state` query; null while the service has no workflow. */
  async state(instance: string): Promise<ServiceStateView | null> {
    try {
      return await this.client.workflow.getHandle(this.workflowId(instance)).query(stateQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  private async promApi<T>(path: string): Promise<T> {
    const res = await fetch(`${this.promUrl}${path}`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  }

  /** An instant query against the real Prometheus. */
  async query(expr: string): Promise<Sample[]> {
    const data = await this.promApi<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
      `/api/v1/query?query=${encodeURIComponent(expr)}`,
    );
    return data.result.map((r) => ({ name: r.metric.__name__ ?? '', labels: r.metric, value: Number(r.value[1]) }));
  }

  /** Prometheus's alerts (pending and firing). */
  async promAlerts(): Promise<PromAlert[]> {
    return (await this.promApi<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts;
  }

  async promAlert(alertname: string, labels: Record<string, string>, state?: string): Promise<PromAlert | undefined> {
    return (await this.promAlerts()).find(
      (a) =>
        a.labels.alertname === alertname &&
        (!state || a.state === state) &&
        Object.entries(labels).every(([k, v]) => a.labels[k] === v),
    );
  }

  /** Alertmanager's current alerts. */
  async amAlerts(): Promise<AmAlert[]> {
    const res = await fetch(`${this.amUrl}/api/v2/alerts`, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`Alertmanager /api/v2/alerts: HTTP ${res.status}`);
    return (await res.json()) as AmAlert[];
  }

  /** The audit log, one parsed record per line (a line that is not JSON throws, naming it). */
  audit(): AuditRecord[] {
    if (!existsSync(this.auditFile)) return [];
    return readFileSync(this.auditFile, 'utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l, i) => {
        try {
          return JSON.parse(l) as AuditRecord;
        } catch (err) {
          throw new Error(`audit line ${i + 1} is not JSON (${(err as Error).message}): ${l}`, { cause: err });
        }
      });
  }

  /** Runs the real `selfheal` CLI with this harness's config. */
  cli(...args: string[]): Promise<RunResult> {
    return new Promise((r) => {
      execFile(
        process.execPath,
        [join(ROOT, 'bin', 'selfheal.js'), ...args, '--config', this.configFile],
        { cwd: ROOT, env: this.selfhealEnv(), timeout: 60_000 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
          r({ code, stdout: String(stdout), stderr: String(stderr) });
        },
      );
    });
  }

  /** The banner `selfheal start` printed. */
  banner(): string {
    const text = this.selfheal ? readFileSync(this.selfheal.logFile, 'utf8') : '';
    const i = text.indexOf('selfheal is running');
    const j = text.indexOf('Press Ctrl-C to stop.', i);
    return i < 0 ? '' : text.slice(i, j < 0 ? undefined : j).trimEnd();
  }

  // ---- teardown ----------------------------------------------------------------------------------

  /** Stops every process this harness started and removes its files. Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= this.teardown();
    return this.stopping;
  }

  private async teardown(): Promise<void> {
    this.log('stopping');
    // selfheal first (Ctrl-C: it stops its workers, API and the Temporal dev server in order).
    await Promise.allSettled([
      this.selfheal?.stop('SIGINT', 20_000),
      this.alertmanager?.stop('SIGTERM', 10_000),
      this.prometheus?.stop('SIGTERM', 10_000),
      this.connection?.close(),
    ]);
    // The user manager stops its units (the agents) when it gets SIGTERM.
    await this.systemd?.stop().catch(() => undefined);
    this.killAgents();
    await Promise.allSettled([this.sink?.close(), this.adminSink?.close()]);
    live.delete(this);
    if (process.env.SELFHEAL_E2E_KEEP === '1') process.stderr.write(`kept ${this.dir}\n`);
    else rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Agents still running (their manager died first), by the pid each wrote at start. A pid is
   * killed only while it is still one of this harness's agents (its command line runs the agent
   * script and its environment names this harness's state folder): a recorded pid may have been
   * reused by an unrelated process since.
   */
  private killAgents(): void {
    let files: string[];
    try {
      files = readdirSync(this.agentsDir).filter((f) => f.endsWith('.pid'));
    } catch {
      return;
    }
    for (const f of files) {
      const pid = Number(readFileSync(join(this.agentsDir, f), 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 1 || !isAgentOf(pid, this.agentsDir)) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** Synchronous last resort (process exit, a signal): kill everything now. */
  killNow(): void {
    if (!live.has(this)) return;
    live.delete(this);
    // Nothing here may block: a second Ctrl-C under tsx SIGKILLs this process unless it exits at once.
    this.selfheal?.killNow();
    this.prometheus?.killNow();
    this.alertmanager?.killNow();
    this.killAgents();
    // UserSystemd.stop() is asynchronous and its child private; this path has to be synchronous.
    const manager = (this.systemd as unknown as { child?: ChildProcess } | null)?.child?.pid;
    if (manager) {
      try {
        process.kill(manager, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (process.env.SELFHEAL_E2E_KEEP !== '1') {
      rmSync(this.dir, { recursive: true, force: true });
      if (this.systemd) rmSync(this.systemd.dir, { recursive: true, force: true });
    }
  }
}
