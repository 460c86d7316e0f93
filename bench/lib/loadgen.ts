// A small closed-loop HTTP load generator (keep-alive, fixed concurrency, bounded in requests and
// time). It runs in a child process (loadgen-child.ts), so the client does not share the event loop
// of the API it measures, as Alertmanager would not.
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { Config } from '../../src/config/config';
import { signalWithStartService } from '../../src/client/signals';
import { alertFiringSignal } from '../../src/workflows/definitions';

export interface LoadJob {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  /** Request bodies, used round-robin (request i sends bodies[i % length]). Empty for GET. */
  bodies: string[];
  requests: number;
  concurrency: number;
  /** Stop issuing new requests after this long (a bound, not a measurement target). */
  maxMs: number;
  /** Status the caller expects; the first response with another status is kept in `unexpected`. */
  expectStatus?: number;
  /**
   * Instead of HTTP: the raw SDK call from this (separate) process, `client.workflow.signalWithStart`
   * of the one-alert signal the webhook sends, for these services round-robin (`url` and `bodies` unused).
   */
  raw?: { address: string; namespace: string; searchAttributes: boolean; services: { host: string; name: string }[] };
}

export interface LoadResult {
  /** Latency of each completed request, ms, in completion order. */
  latenciesMs: number[];
  statuses: Record<string, number>;
  errors: number;
  firstError: string | null;
  elapsedMs: number;
  completed: number;
  /** Bytes of the response bodies, for a sanity check of what the server answered. */
  responseBytes: number;
  /** CPU time the load generator itself used, ms. */
  clientCpuMs: number;
  /** One response body, for checking what the server said. */
  sampleBody: string | null;
  /** The first response whose status was not `expectStatus`: status and body (truncated). */
  unexpected: string | null;
}

export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const url = new URL(job.url);
  const agent = new Agent({ keepAlive: true, maxSockets: job.concurrency });
  const latenciesMs: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  let firstError: string | null = null;
  let responseBytes = 0;
  let sampleBody: string | null = null;
  let unexpected: string | null = null;
  let next = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const deadline = started + job.maxMs;

  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const body = job.bodies.length ? job.bodies[i % job.bodies.length] : null;
      const t0 = performance.now();
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname + url.search,
          method: job.method,
          headers: {
            ...job.headers,
            ...(body != null ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            latenciesMs.push(performance.now() - t0);
            const code = String(res.statusCode);
            statuses[code] = (statuses[code] ?? 0) + 1;
            const text = Buffer.concat(chunks);
            responseBytes += text.length;
            if (sampleBody == null) sampleBody = text.toString('utf8');
            if (unexpected == null && job.expectStatus !== undefined && res.statusCode !== job.expectStatus) {
              unexpected = `${res.statusCode}: ${text.toString('utf8').slice(0, 500)}`;
            }
            resolve();
          });
          res.on('error', (err) => {
            errors++;
            firstError ??= err.message;
            resolve();
          });
        },
      );
      req.on('error', (err) => {
        errors++;
        firstError ??= err.message;
        resolve();
      });
      if (body != null) req.end(body);
      else req.end();
    });

  const loop = async () => {
    while (next < job.requests && performance.now() < deadline) await one(next++);
  };
  await Promise.all(Array.from({ length: job.concurrency }, loop));
  const elapsedMs = performance.now() - started;
  agent.destroy();
  const cpu = process.cpuUsage(cpu0);
  return {
    latenciesMs,
    statuses,
    errors,
    firstError,
    elapsedMs,
    completed: latenciesMs.length,
    responseBytes,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
    sampleBody,
    unexpected,
  };
}

/**
 * `n` calls of `fn(i)`, `concurrency` at a time, closed loop (no new call after `maxMs`): latencies
 * in ms of the calls that succeeded, the failures, and the elapsed time.
 */
export async function closedLoop(
  n: number,
  concurrency: number,
  fn: (i: number) => Promise<unknown>,
  maxMs = Infinity,
): Promise<{ latencies: number[]; errors: number; firstError: string | null; elapsedMs: number }> {
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  let firstError: string | null = null;
  const t0 = performance.now();
  const deadline = t0 + maxMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n && performance.now() < deadline) {
        const i = next++;
        const s = performance.now();
        try {
          await fn(i);
          latencies.push(performance.now() - s);
        } catch (err) {
          errors++;
          firstError ??= (err as Error).message;
        }
      }
    }),
  );
  return { latencies, errors, firstError, elapsedMs: performance.now() - t0 };
}

/** The signal the webhook sends for one `ServiceStalled` alert, as the raw SDK calls send it. */
export const rawAlertPayload = (id: string) => ({
  alertnames: ['ServiceStalled'],
  alerts: [{ id, name: 'ServiceStalled' }],
  summary: 'made no progress for 5m',
});

const rawClients = new Map<string, Promise<Client>>();

/** A job's `raw` calls: a plain script's signal-with-start, closed loop, as runLoad measures HTTP. */
export async function runRaw(job: LoadJob & { raw: NonNullable<LoadJob['raw']> }): Promise<LoadResult> {
  const { address, namespace, searchAttributes, services } = job.raw;
  let pending = rawClients.get(address);
  if (!pending) {
    pending = Connection.connect({ address }).then((connection) => new Client({ connection, namespace }));
    rawClients.set(address, pending);
  }
  const client = await pending;
  // signalWithStartService reads only temporal.searchAttributes of the config.
  const config = { temporal: { searchAttributes } } as unknown as Config;
  const cpu0 = process.cpuUsage();
  const r = await closedLoop(
    job.requests,
    job.concurrency,
    (i) => {
      const s = services[i % services.length];
      return signalWithStartService(client, config, s.host, s.name, alertFiringSignal, rawAlertPayload(`script-${i}`));
    },
    job.maxMs,
  );
  const cpu = process.cpuUsage(cpu0);
  return {
    latenciesMs: r.latencies,
    statuses: {},
    errors: r.errors,
    firstError: r.firstError,
    elapsedMs: r.elapsedMs,
    completed: r.latencies.length,
    responseBytes: 0,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
    sampleBody: null,
    unexpected: null,
  };
}

/** Parent side: one long-lived child process that runs jobs one at a time. */
export class LoadGenerator {
  private seq = 0;
  private constructor(private readonly child: ChildProcess) {}

  static start(): LoadGenerator {
    const child = fork(join(__dirname, 'loadgen-child.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new LoadGenerator(child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  run(job: LoadJob): Promise<LoadResult> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const onMessage = (m: { id: number; result?: LoadResult; error?: string }) => {
        if (m.id !== id) return;
        this.child.off('message', onMessage);
        this.child.off('exit', onExit);
        if (m.error) reject(new Error(m.error));
        else resolve(m.result!);
      };
      const onExit = (code: number | null) => reject(new Error(`load generator exited (${code})`));
      this.child.on('message', onMessage);
      this.child.once('exit', onExit);
      this.child.send({ id, job });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode != null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.disconnect();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  }
}
