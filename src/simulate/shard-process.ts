// One shard of a simulation in a child process (the Node worker's workflow activations are what
// costs CPU; one process per shard lets every core work). The parent sends the shard as a
// structured clone (Maps, Infinity and the workflow bundle survive it); the child answers with
// progress and, at the end, its audit records. The child ends when the parent goes away.
import { fork } from 'node:child_process';
import type { AuditRecord } from '../activities';
import type { ShardInput } from './driver';

type ShardJob = Omit<ShardInput, 'onProgress'>;
type ChildMessage = { progress: number } | { records: AuditRecord[] } | { error: string };

/** Flags the child needs to load this code as the parent did (tsx in development), and no others. */
function loaderArgs(): string[] {
  const out: string[] = [];
  const a = process.execArgv;
  for (let i = 0; i < a.length; i++) {
    const [flag] = a[i].split('=');
    if (['--require', '-r', '--import', '--loader', '--experimental-loader'].includes(flag)) {
      out.push(a[i]);
      if (!a[i].includes('=') && i + 1 < a.length) out.push(a[++i]);
    } else if (flag === '--enable-source-maps' || flag.startsWith('--max-old-space-size')) out.push(a[i]);
  }
  // Running from the TypeScript sources with tsx registered in-process (bin/selfheal.js does that).
  if (__filename.endsWith('.ts') && !out.some((f) => f.includes('tsx'))) out.push('--require', 'tsx/cjs');
  return out;
}

export function runShardProcess(x: ShardInput): Promise<AuditRecord[]> {
  const { onProgress, ...job } = x;
  return new Promise((resolve, reject) => {
    const child = fork(__filename, [], {
      execArgv: loaderArgs(),
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    let records: AuditRecord[] | null = null;
    let error: string | null = null;
    child.on('message', (m: ChildMessage) => {
      if ('progress' in m) onProgress?.(m.progress);
      else if ('records' in m) records = m.records;
      else error = m.error;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (records) resolve(records);
      else reject(new Error(error ?? `simulation shard exited (${signal ?? `code ${code}`}) without results`));
    });
    child.send(job satisfies ShardJob);
  });
}

function childMain(): void {
  // Loaded here, not at the top: the parent imports this file too, and driver imports it back.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { runShard, quietRuntime } = require('./driver') as typeof import('./driver');
  quietRuntime();
  process.once('disconnect', () => process.exit(1));
  process.once('message', (job: ShardJob) => {
    runShard({ ...job, onProgress: (d) => process.send?.({ progress: d }) }).then(
      (records) => process.send?.({ records }, () => process.exit(0)),
      (err: Error) => process.send?.({ error: err.stack ?? err.message }, () => process.exit(1)),
    );
  });
}

if (require.main === module && process.send) childMain();
