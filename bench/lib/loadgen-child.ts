// Child-process entry of the load generator: runs each job it receives over IPC and answers.
import { runLoad, runRaw, type LoadJob } from './loadgen';

process.on('message', (m: { id: number; job: LoadJob }) => {
  (m.job.raw ? runRaw({ ...m.job, raw: m.job.raw }) : runLoad(m.job)).then(
    (result) => process.send?.({ id: m.id, result }),
    (err: unknown) => process.send?.({ id: m.id, error: (err as Error).message }),
  );
});
process.on('disconnect', () => process.exit(0));
