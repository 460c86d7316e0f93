import type { Config } from '../config/config';
import type { ServiceActions } from '../temporal/actions';
import type { StateSource } from './metrics';

/**
 * The state gauges read the durable workflow state at scrape time: from the visibility index (one
 * list call, scales to fleets) when search attributes are on, else by querying each workflow.
 */
export function workflowStateSource(actions: ServiceActions, config: Config): StateSource {
  return async () => {
    const summaries = config.temporal.searchAttributes ? await actions.listFromVisibility() : await actions.list();
    return summaries.map((s) => ({
      host: s.host,
      service: s.service,
      status: s.status,
      phase: s.phase,
      consecutiveFailures: s.consecutiveFailures,
    }));
  };
}
