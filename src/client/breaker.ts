// Client-side entry into the fleet coordinator, shared by the API and the CLI: read the breakers,
// trip or reset one by hand. A command is a signal-with-start (the coordinator may not have started
// yet), then a read until the coordinator shows the command applied.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Config } from '../config/config';
import { FLEET_SCOPE, hostScope } from '../policy/fleet';
import {
  breakerCommandSignal,
  breakerQuery,
  FLEET_TASK_QUEUE,
  FLEET_WORKFLOW_ID,
  FLEET_WORKFLOW_TYPE,
  type BreakerCommand,
  type BreakerView,
  type FleetWorkflowInput,
} from '../workflows/fleet-definitions';
import { ActionError, callTemporal } from './call';

/** `fleet`, a configured host's name, or `host:<name>`, as a scope; ActionError('invalid') otherwise. */
export function scopeFor(config: Config, scope: string | undefined): string {
  if (!scope || scope === FLEET_SCOPE) return FLEET_SCOPE;
  if (scope === 'all') return 'all';
  const host = scope.startsWith('host:') ? scope.slice(5) : scope;
  if (!config.services.some((s) => s.host === host)) {
    throw new ActionError('invalid', `unknown scope ${JSON.stringify(scope)}: use "fleet", "all" or a configured host`);
  }
  return hostScope(host);
}

/** The breakers, slots and held incidents; null when the coordinator has not started yet (nothing happened). */
export async function breakerStatus(client: Client, timeoutMs: number | null): Promise<BreakerView | null> {
  return callTemporal(client, timeoutMs, async () => {
    try {
      return await client.workflow.getHandle(FLEET_WORKFLOW_ID).query(breakerQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  });
}

/** Trips or resets a scope by hand; resolves with the coordinator's view once it shows the command applied. */
export async function breakerCommand(
  client: Client,
  cmd: Omit<BreakerCommand, 'id'>,
  timeoutMs: number,
): Promise<BreakerView> {
  const id = `${cmd.action} ${cmd.scope} ${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const deadline = Date.now() + timeoutMs;
  await callTemporal(client, timeoutMs, () =>
    client.workflow.signalWithStart<(input: FleetWorkflowInput) => Promise<void>, [BreakerCommand]>(
      FLEET_WORKFLOW_TYPE,
      {
        workflowId: FLEET_WORKFLOW_ID,
        taskQueue: FLEET_TASK_QUEUE,
        args: [{}],
        signal: breakerCommandSignal.name,
        signalArgs: [{ ...cmd, id }],
        staticSummary: 'selfheal fleet coordinator: breakers, restart slots, dependencies',
      },
    ),
  );
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new ActionError('unavailable', 'the fleet coordinator did not apply the command in time');
    const v = await breakerStatus(client, left).catch(() => null);
    if (v?.lastCommand === id) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
}
