// Process memory and the machine description.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { temporalCliPath } from '../../src/temporal/binaries';
import { mib, sleep } from './stats';

setFlagsFromString('--expose-gc');
const gcFn = runInNewContext('gc') as (() => void) | undefined;

/** Full GC (twice, with a pause for finalisers), so heap figures compare across snapshots. */
export async function fullGc(): Promise<void> {
  if (!gcFn) return;
  gcFn();
  await sleep(50);
  gcFn();
}

export interface MemorySnapshot {
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
}

/** This process after a full GC. Workflow code runs in worker threads whose heaps only show in RSS. */
export async function processMemory(): Promise<MemorySnapshot> {
  await fullGc();
  const m = process.memoryUsage();
  return {
    rssMiB: mib(m.rss),
    heapUsedMiB: mib(m.heapUsed),
    heapTotalMiB: mib(m.heapTotal),
    externalMiB: mib(m.external),
  };
}

/** VmRSS of a process from /proc, in MiB (null when it is gone). */
export function vmRssMiB(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Children of a process (the temporal CLI serves in-process, but check in case a version forks). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** RSS of a process and all its descendants, in MiB. */
export function treeRssMiB(pid: number | undefined): number | null {
  if (!pid) return null;
  const own = vmRssMiB(pid);
  if (own == null) return null;
  return childPids(pid).reduce((sum, c) => sum + (treeRssMiB(c) ?? 0), own);
}

/** CPU time (user + system) of a process from /proc/<pid>/stat, in seconds. */
export function cpuSeconds(pid: number | undefined, statFile = `/proc/${pid}/stat`): number | null {
  if (!pid) return null;
  try {
    const stat = readFileSync(statFile, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the comm field: state is [0], utime [11], stime [12] (in clock ticks, 100 Hz on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

/** Threads alive when this module loaded (main, V8 platform threads): the rest were started later. */
const startupThreads = new Set(listThreads(process.pid));

function listThreads(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
}

export interface ThreadCpu {
  /** The main JS thread: Fastify, the gRPC client, activities, the worker's JS side. */
  main: number;
  /**
   * JS threads started after the bench began: the SDK's workflow worker thread (workflow code and
   * activations) and, with little CPU, libuv pool threads; plus the SDK's `workflow-*` thread.
   */
  workflow: number;
  /** The SDK's Rust core (tokio and temporal-* threads): pollers, gRPC of the workers. */
  core: number;
  /** Everything else: V8 GC and compiler threads that exist from process start. */
  other: number;
  total: number;
}

/** CPU seconds of this process so far, split by thread name (Linux /proc). Threads that exited are lost from the split. */
export function threadCpu(pid = process.pid): ThreadCpu {
  const out: ThreadCpu = { main: 0, workflow: 0, core: 0, other: 0, total: 0 };
  for (const tid of listThreads(pid)) {
    let comm: string;
    try {
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    const secs = cpuSeconds(Number(tid), `/proc/${pid}/task/${tid}/stat`) ?? 0;
    if (tid === String(pid)) out.main += secs;
    else if (comm.startsWith('tokio') || comm.startsWith('temporal')) out.core += secs;
    else if (comm.startsWith('workflow') || (pid === process.pid && !startupThreads.has(tid))) out.workflow += secs;
    else out.other += secs;
  }
  out.total = out.main + out.workflow + out.core + out.other;
  return out;
}

export function cpuDelta(a: ThreadCpu, b: ThreadCpu): ThreadCpu {
  const d = (k: keyof ThreadCpu) => Math.max(0, b[k] - a[k]);
  return { main: d('main'), workflow: d('workflow'), core: d('core'), other: d('other'), total: d('total') };
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000 }).trimEnd();
  } catch (err) {
    return `unavailable (${(err as Error).message.split('\n')[0]})`;
  }
}

export interface MachineInfo {
  date: string;
  nproc: string;
  cpuModel: string;
  memTotalGiB: number;
  freeG: string;
  node: string;
  temporalCli: string;
  kernel: string;
  loadavgAtStart: string;
}

export function machineInfo(): MachineInfo {
  const cli = temporalCliPath();
  return {
    date: new Date().toISOString(),
    nproc: run('nproc', []),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memTotalGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    freeG: run('free', ['-g']),
    node: process.version,
    temporalCli: cli ? run(cli, ['--version']) : 'not installed',
    kernel: run('uname', ['-r']),
    loadavgAtStart: readFileSync('/proc/loadavg', 'utf8').trim(),
  };
}
