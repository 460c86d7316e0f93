// The two Temporal servers bench/cluster.ts compares: the product's embedded dev server and the
// Temporal server on PostgreSQL (test/helpers/temporal-cluster.ts), each with its memory readers.
import { readFileSync } from 'node:fs';
import { TemporalCluster } from '../../test/helpers/temporal-cluster';
import { childPids, treeRssMiB } from './system';
import { startDevServer } from './temporal';

export interface Target {
  name: 'dev server' | 'cluster';
  address: string;
  startSeconds: number;
  rssMiB: () => number | null;
  dbRssMiB: () => number | null;
  close(): Promise<void>;
}

/**
 * Proportional set size of a process and its descendants, MiB: PostgreSQL's backends share its
 * buffers, so summing their RSS would count that memory once per backend.
 */
function treePssMiB(pid: number | null): number | null {
  if (!pid) return null;
  try {
    const kb = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
    return childPids(pid).reduce((sum, c) => sum + (treePssMiB(c) ?? 0), kb / 1024);
  } catch {
    return null;
  }
}

export async function devServerTarget(services: number): Promise<Target> {
  const t = await startDevServer(services);
  await t.native.close();
  await t.client.connection.close();
  return {
    name: 'dev server',
    address: t.address,
    startSeconds: t.startSeconds,
    rssMiB: () => treeRssMiB(t.server.pid),
    dbRssMiB: () => null,
    close: () => t.close(),
  };
}

export async function clusterTarget(): Promise<Target> {
  const t0 = performance.now();
  const c = await TemporalCluster.start();
  return {
    name: 'cluster',
    address: c.address,
    startSeconds: (performance.now() - t0) / 1000,
    rssMiB: () => c.rssBytes() / 2 ** 20,
    dbRssMiB: () => treePssMiB(c.postgresPid()),
    close: () => c.stop(),
  };
}
