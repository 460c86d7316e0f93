import type { Config } from '../config/config';
import type { ServiceActions } from '../temporal/actions';
import type { StateSource } from './metrics';

/** Up to this many services, scrapes query every workflow for its full state. */
export const QUERY_ALL_LIMIT = 100;

/**
 * The state gauges read the durable workflow state at scrape time. For up to QUERY_ALL_LIMIT
 * services each workflow is queried (exact, includes restarts in the last hour); beyond that, or
 * when a query path is not possible, one visibility list call serves any fleet size (status,
 * phase and failures come from the search attributes the workflows maintain).
 */
export function workflowStateSource(actions: ServiceActions, config: Config): StateSource {
  const useQueries = !config.temporal.searchAttributes || config.services.length <= QUERY_ALL_LIMIT;
  return async () => {
    const summaries = useQueries ? await actions.list() : await actions.listFromVisibility();
    return summaries.map((s) => ({
      host: s.host,
      service: s.service,
      status: s.status,
      phase: s.phase,
      consecutiveFailures: s.consecutiveFailures,
      restartsLastHour: s.restartsLastHour,
    }));
  };
}
