// Records the fleet coordinator answering several restarts asked at once, as a replay history: the
// asks are in its history before its first task. Recorded with the code before the patch
// fleet-answers-together (one answer per workflow task), it proves that runs started before the
// patch still replay; without the patch's guard this replay fails.
//   npx tsx test/histories/record-fleet-answers.ts v0.3-
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { createFleetWorker } from '../../src/worker/workers';
import { FLEET_WORKFLOW_ID } from '../../src/workflows/fleet-definitions';
import { askAll, askersConfig } from '../helpers/fleet-asks';
import { timeSkippingEnv, workflowBundle } from '../helpers/temporal';
import { waitFor } from '../helpers/wait';

const N = 4;

async function main() {
  const prefix = process.argv[2];
  if (!prefix) throw new Error('usage: npx tsx test/histories/record-fleet-answers.ts <prefix, e.g. v0.3->');
  const config = askersConfig(N);
  const env = await timeSkippingEnv();
  try {
    await askAll(env.client, N);
    const worker = await createFleetWorker({
      config,
      connection: env.nativeConnection,
      workflows: { workflowBundle: await workflowBundle() },
    });
    const running = worker.run();
    try {
      const handle = env.client.workflow.getHandle(FLEET_WORKFLOW_ID);
      // Every answer sent and its outcome (the entity workflows do not exist: each answer fails,
      // and the coordinator gives the slot back) recorded.
      await waitFor(
        async () => {
          const h = await handle.fetchHistory();
          const failed = (h.events ?? []).filter((e) => e.signalExternalWorkflowExecutionFailedEventAttributes);
          return failed.length >= N ? true : null;
        },
        { what: `the coordinator's ${N} answers`, timeoutMs: 60_000 },
      );
      await new Promise((r) => setTimeout(r, 2_000));
      const history = await handle.fetchHistory();
      writeFileSync(join(__dirname, `${prefix}fleet-answers-batch.json`), historyToJSON(history) + '\n');
    } finally {
      worker.shutdown();
      await running;
    }
  } finally {
    await env.teardown();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
