// The chaos suite's deployment: every part of selfheal as its own process of the real built CLI
// (`selfheal dev-server`, `selfheal api`, `selfheal worker --control`, `selfheal worker --host`),
// a private systemd user manager with units whose start takes seconds and that count their own
// starts (each ExecStartPre appends a line), and an HTTP sink for escalations. Each part can be
// killed with SIGKILL (its whole process group, as a crash would) and brought back.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { stringify } from 'yaml';
import type { AuditRecord } from '../../src/activities/audit';
import { stateQuery, workflowIdFor, type ServiceStateView } from '../../src/workflows/definitions';
import { parseMetrics, type Sample } from '../e2e/harness';
import { BIN, ROOT, runCli, type CliResult } from '../helpers/cli';
import { tempDir } from '../helpers/config';
import { freePorts } from '../helpers/ports';
import { UserSystemd } from '../helpers/systemd';
import { waitFor } from '../helpers/wait';
import { WebhookSink } from '../helpers/webhook-sink';

export const HOST = 'chaos';
export type PartName = 'dev-server' | 'api' | 'control' | 'host';

/** How long a unit's start takes (ExecStartPre=sleep): `systemctl restart` is in progress that long. */
export const START_SECONDS = 2;

/**
 * Short windows so an incident takes about 25 s; production budget and failure limits. The validation
 * window must outlast bringing a killed part back (the kill "while validating" is followed by one
 * "while restarting"): on a 2-core machine at load 10 the API took ~9 s to come back, and with a 3 s
 * window the restart had come and gone before the suite looked for it.
 */
export const CHAOS_POLICY = {
  validationWindow: '15s',
  cooldown: '1s',
  maxRestartsPerHour: 3,
  maxConsecutiveFailures: 2,
  verifyTimeout: '20s',
  verifyStableFor: '2s',
  hostTimeout: '30s',
};

const ARGS: Record<PartName, string[]> = {
  'dev-server': ['dev-server'],
  api: ['api'],
  control: ['worker', '--control'],
  host: ['worker', '--host', HOST],
};
const READY: Record<PartName, string> = {
  'dev-server': 'Press Ctrl-C to stop.',
  api: 'Press Ctrl-C to stop.',
  control: 'Press Ctrl-C to stop.',
  host: 'Press Ctrl-C to stop.',
};

/** One part: a `selfheal` process in its own process group, its output in a log file. */
class Part {
  child: ChildProcess | null = null;
  starts = 0;
  constructor(
    readonly name: PartName,
    private readonly cluster: Cluster,
  ) {}

  get logFile(): string {
    return join(this.cluster.dir, `${this.name}.log`);
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(wrap: string[] = []): Promise<void> {
    const from = existsSync(this.logFile) ? readFileSync(this.logFile).length : 0;
    const fd = openSync(this.logFile, 'a');
    try {
      const argv = [...wrap, process.execPath, BIN, ...ARGS[this.name], '--config', this.cluster.configFile];
      this.child = spawn(argv[0], argv.slice(1), {
        cwd: ROOT,
        env: this.cluster.env(),
        detached: true,
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    this.starts++;
    const child = this.child;
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`${this.name} exited (${child.exitCode}):\n${this.tail(from)}`);
        return readFileSync(this.logFile).subarray(from).toString().includes(READY[this.name]);
      },
      { what: `${this.name} to be ready`, timeoutMs: 120_000, intervalMs: 100 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.tail(from)}`);
    });
  }

  tail(from = 0): string {
    try {
      return readFileSync(this.logFile).subarray(from).toString().split('\n').slice(-30).join('\n');
    } catch {
      return '';
    }
  }

  /** SIGKILL to the whole process group (e.g. the dev server's Temporal, a running systemctl). */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child?.pid || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await exited;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child?.pid || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGINT');
    const timer = setTimeout(() => void this.kill(), 15_000);
    await exited;
    clearTimeout(timer);
    // Anything it left in its group (only ever this part's own processes).
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // nothing left
    }
  }
}

export interface UnitSpec {
  name: string;
  /** ExecStart fails: the unit never comes up, every verification fails. */
  broken?: boolean;
  /** Per-service policy overrides. */
  policy?: Record<string, string | number>;
}

export class Cluster {
  readonly dir = tempDir('selfheal-test-chaos-');
  readonly configFile = join(this.dir, 'selfheal.yaml');
  readonly auditFile = join(this.dir, 'audit', 'audit.log');
  readonly token = randomBytes(24).toString('hex');
  readonly parts: Record<PartName, Part>;
  systemd!: UserSystemd;
  sink!: WebhookSink;
  client!: Client;
  apiUrl = '';
  metricsUrl = '';
  private connection: Connection | null = null;
  private temporalAddress = '';

  private constructor(
    readonly units: UnitSpec[],
    private readonly fleet: Record<string, unknown>,
  ) {
    this.parts = {
      'dev-server': new Part('dev-server', this),
      api: new Part('api', this),
      control: new Part('control', this),
      host: new Part('host', this),
    };
  }

  /** `fleet`: the config's `fleet` section (default: the breaker off, see bringUp). */
  static async start(units: UnitSpec[], opts: { fleet?: Record<string, unknown> } = {}): Promise<Cluster> {
    const c = new Cluster(units, opts.fleet ?? { breaker: { enabled: false } });
    try {
      await c.bringUp();
      return c;
    } catch (err) {
      await c.stop();
      throw err;
    }
  }

  env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: this.systemd.runtimeDir };
    for (const k of ['NODE_TEST_CONTEXT', 'NODE_OPTIONS', 'SELFHEAL_CONFIG', 'SELFHEAL_HOST', 'SELFHEAL_FROM_SOURCE'])
      delete env[k];
    return env;
  }

  private async bringUp(): Promise<void> {
    // Built code, as deployed: the workers load dist/workflow-bundle.js.
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs'), '--quiet'], { cwd: ROOT, stdio: 'inherit' });
    this.systemd = await UserSystemd.start();
    this.sink = await WebhookSink.start();
    mkdirSync(join(this.dir, 'starts'));
    mkdirSync(join(this.dir, 'audit'));
    for (const u of this.units) {
      const startsFile = join(this.dir, 'starts', u.name);
      await this.systemd.addUnit(
        u.name,
        [
          '[Unit]',
          'StartLimitIntervalSec=0',
          '[Service]',
          'Type=simple',
          `ExecStartPre=/bin/sh -c 'echo start >> ${startsFile}'`,
          `ExecStartPre=/bin/sleep ${START_SECONDS}`,
          u.broken ? 'ExecStart=/bin/false' : 'ExecStart=/bin/sleep 3600',
          '',
        ].join('\n'),
      );
    }
    const [temporalPort, uiPort, apiPort, metricsPort] = await freePorts(4);
    this.temporalAddress = `127.0.0.1:${temporalPort}`;
    this.apiUrl = `http://127.0.0.1:${apiPort}`;
    this.metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    const config = {
      // Embedded: `selfheal dev-server` runs it; the other parts reach it on 127.0.0.1:port.
      temporal: { dataDir: join(this.dir, 'data'), port: temporalPort, uiPort },
      api: { listen: `127.0.0.1:${apiPort}`, token: this.token, adminToken: this.token + 'admin' },
      policy: CHAOS_POLICY,
      audit: { file: this.auditFile },
      escalation: { webhooks: [{ url: this.sink.url }] },
      worker: { temporalMetrics: '', metrics: `127.0.0.1:${metricsPort}` },
      // By default the breaker is off: in kill-parts, each part leaves its broken unit escalated (an
      // open incident) on the one host; by the third part half the host's services have open
      // incidents and the mass-failure breaker would rightly hold every restart. The breaker is not
      // the subject there (it is in breaker.test.ts).
      fleet: this.fleet,
      services: this.units.map((u) => ({
        name: u.name,
        host: HOST,
        manager: 'systemd-user',
        ...(u.policy ? { policy: u.policy } : {}),
      })),
    };
    writeFileSync(this.configFile, stringify(config));
    await this.parts['dev-server'].start();
    for (const p of ['control', 'host', 'api'] as const) await this.parts[p].start();
    this.connection = await Connection.connect({ address: this.temporalAddress });
    this.client = new Client({ connection: this.connection, namespace: 'default' });
  }

  async stop(): Promise<void> {
    for (const p of ['api', 'host', 'control', 'dev-server'] as const)
      await this.parts[p].stop().catch(() => undefined);
    await this.connection?.close().catch(() => undefined);
    await this.systemd?.stop().catch(() => undefined);
    await this.sink?.close().catch(() => undefined);
    if (process.env.SELFHEAL_TEST_KEEP === '1') process.stderr.write(`kept ${this.dir}\n`);
    else rmSync(this.dir, { recursive: true, force: true });
  }

  /** SIGKILL a part, then start it again (`wrap`: a command line to start it through, e.g. unshare). */
  async crash(part: PartName, opts: { whileDown?: () => Promise<void>; wrap?: string[] } = {}): Promise<void> {
    await this.parts[part].kill();
    await opts.whileDown?.();
    await this.parts[part].start(opts.wrap);
  }

  /** Runs the built `selfheal` CLI against this cluster's config. */
  cli(...args: string[]): Promise<CliResult> {
    return runCli([...args, '--config', this.configFile], { env: { ...this.env(), SELFHEAL_FROM_SOURCE: '' } });
  }

  /** Starts counted by the unit itself. */
  starts(unit: string): number {
    try {
      return readFileSync(join(this.dir, 'starts', unit), 'utf8')
        .split('\n')
        .filter(Boolean).length;
    } catch {
      return 0;
    }
  }

  /** POSTs one firing alert for `unit` to the webhook; the HTTP status. */
  async fire(unit: string, status: 'firing' | 'resolved' = 'firing'): Promise<number> {
    const res = await fetch(`${this.apiUrl}/selfheal/trigger`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        version: '4',
        status,
        alerts: [{ status, labels: { alertname: 'ServiceStalled', service: unit, host: HOST, reason: 'down' } }],
      }),
      signal: AbortSignal.timeout(30_000),
    });
    await res.text();
    return res.status;
  }

  /** Fires until the webhook takes it (200). */
  async fireUntilAccepted(unit: string): Promise<void> {
    // Generous: twice, at load average 8-10, Temporal answered the webhook only ~80 s after the
    // dev-server part's last restart (cause not found yet; see RELIABILITY.md).
    await waitFor(async () => (await this.fire(unit)) === 200, {
      what: `the webhook to accept ${unit}`,
      timeoutMs: 180_000,
    });
  }

  async state(unit: string): Promise<ServiceStateView | null> {
    try {
      return await this.client.workflow.getHandle(workflowIdFor(HOST, unit)).query(stateQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  /** Waits (polling the workflow's state query) for `unit` to be in `phase`. */
  async untilPhase(unit: string, phase: string, timeoutMs = 90_000): Promise<ServiceStateView> {
    return this.until(
      async () => {
        const s = await this.state(unit);
        return s?.phase === phase ? s : null;
      },
      `${unit} in phase ${phase}`,
      timeoutMs,
      100,
    );
  }

  /** Waits for `systemctl restart` of `unit` to be in progress (its start is running). */
  async untilActivating(unit: string, timeoutMs = 90_000): Promise<void> {
    await this.until(
      async () => (await this.systemd.show(unit)).ActiveState === 'activating',
      `${unit} activating (a restart in progress)`,
      timeoutMs,
      50,
    );
  }

  async until<T>(
    probe: () => Promise<T> | T,
    what: string,
    timeoutMs: number,
    intervalMs = 250,
  ): Promise<NonNullable<T>> {
    return waitFor(probe, { what, timeoutMs, intervalMs }).catch((err: Error) => {
      throw new Error(`${err.message}\n${this.diagnostics()}`);
    });
  }

  /** The control worker's counters. */
  async metrics(): Promise<Sample[]> {
    const res = await fetch(this.metricsUrl, { signal: AbortSignal.timeout(10_000) });
    return parseMetrics(await res.text());
  }

  audit(file = this.auditFile): AuditRecord[] {
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditRecord);
  }

  diagnostics(): string {
    const parts = Object.values(this.parts).map(
      (p) => `--- ${p.name} (${p.running ? 'running' : 'down'}):\n${p.tail()}`,
    );
    return [`--- folder ${this.dir}`, ...parts].join('\n');
  }
}
