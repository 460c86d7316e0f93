// Client-side entry into the entity workflows, shared by the API, the CLI and `selfheal poll`:
// signal-with-start, so repeated deliveries reach the one workflow of each (host, service).
import type { Client, WorkflowHandle } from '@temporalio/client';
import type { SearchAttributePair, SignalDefinition } from '@temporalio/common';
import type { Config } from '../config/config';
import type { Phase, Status } from '../policy/policy';
import {
  CONTROL_TASK_QUEUE,
  SA_FAILURES,
  SA_HOST,
  SA_PHASE,
  SA_SERVICE,
  SA_STATUS,
  WORKFLOW_TYPE,
  workflowIdFor,
  type ServiceWorkflowInput,
} from '../workflows/definitions';

export function workflowInput(config: Config, host: string, service: string): ServiceWorkflowInput {
  return { host, service, searchAttributes: config.temporal.searchAttributes };
}

/** The search attributes a service's workflow starts with. */
export function startSearchAttributes(
  host: string,
  service: string,
  phase: Phase,
  status: Status,
): SearchAttributePair[] {
  return [
    { key: SA_SERVICE, value: service },
    { key: SA_HOST, value: host },
    { key: SA_PHASE, value: phase },
    { key: SA_STATUS, value: status },
    { key: SA_FAILURES, value: 0 },
  ];
}

/** Signals the service's workflow, starting it first if it is not running. Resolves once Temporal accepted it. */
export async function signalWithStartService<P>(
  client: Client,
  config: Config,
  host: string,
  service: string,
  signal: SignalDefinition<[P?]>,
  payload: P,
  input: Pick<ServiceWorkflowInput, 'fleetReports'> = {},
): Promise<WorkflowHandle> {
  // Set at start so a new workflow is filterable in the Temporal UI before its first task runs.
  const typedSearchAttributes = config.temporal.searchAttributes
    ? startSearchAttributes(host, service, 'idle', 'OK')
    : undefined;
  return client.workflow.signalWithStart<(input: ServiceWorkflowInput) => Promise<void>, [P]>(WORKFLOW_TYPE, {
    workflowId: workflowIdFor(host, service),
    taskQueue: CONTROL_TASK_QUEUE,
    args: [{ ...workflowInput(config, host, service), ...input }],
    signal: signal.name,
    signalArgs: [payload],
    typedSearchAttributes,
    // What the Temporal UI lists for this workflow; its current details say where the incident is.
    staticSummary: `${service} on ${host}`,
    staticDetails:
      `Self-healing of **${service}** on host **${host}**: validates alerts, restarts through the host's ` +
      `worker (task queue \`selfheal-host-${host}\`), verifies, escalates. ` +
      `Humans: \`selfheal approve|skip|pause|resume ${service} --host ${host}\`, or send those signals here.`,
  });
}
