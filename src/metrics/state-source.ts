import { QUERY_ALL_LIMIT, type ServiceActions, type ServiceSummary } from '../client/actions';
import { ActionError } from '../client/call';
import { Pool } from '../client/pool';
import type { Config } from '../config/config';
import type { ServiceGaugeState, StateReadErrorReason, StateSource } from './metrics';

export { QUERY_ALL_LIMIT };

/**
 * Deadline of each workflow query at scrape time: well below Prometheus' default scrape timeout
 * (10 s), so one workflow that does not answer cannot make the whole scrape fail.
 */
export const SCRAPE_QUERY_TIMEOUT_MS = 3_000;

/**
 * On the index path, held incidents whose reason is asked of their workflows (the index has the phase,
 * not the reason): as many queries as the query path would make for a whole small fleet. Held
 * incidents past it are counted with reason `unknown`.
 */
export const HELD_REASON_QUERY_LIMIT = QUERY_ALL_LIMIT;

/** The metric's reason label for a failed read. */
export function readErrorReason(err: Error): StateReadErrorReason {
  if (!(err instanceof ActionError)) return 'error';
  return err.code === 'unavailable' ? 'unavailable' : err.code === 'unreadable' ? 'query-failed' : 'error';
}

/**
 * The state gauges read the durable workflow state at scrape time. For up to QUERY_ALL_LIMIT
 * services each workflow is queried (exact, includes restarts in the last hour; a service whose query
 * fails is reported as such, the others stay current); beyond that, or when a query path is not
 * possible, one visibility list call serves any fleet size (status, phase and failures come from the
 * search attributes the workflows maintain; if that call fails, the whole read fails).
 */
export function workflowStateSource(
  actions: ServiceActions,
  config: Config,
  opts: { queryTimeoutMs?: number } = {},
): StateSource {
  const useQueries = !actions.indexed();
  const timeoutMs = Math.min(opts.queryTimeoutMs ?? SCRAPE_QUERY_TIMEOUT_MS, config.api.temporalTimeoutMs);
  const gauge = (s: ServiceGaugeState): ServiceGaugeState => ({
    host: s.host,
    service: s.service,
    status: s.status,
    phase: s.phase,
    consecutiveFailures: s.consecutiveFailures,
    restartsLastHour: s.restartsLastHour,
    heldReason: s.heldReason ?? (s.phase === 'held' ? 'unknown' : null),
  });
  // Reads only what the index lacks: why each held incident waits (a failed read leaves `unknown`).
  const withHeldReasons = async (list: ServiceSummary[]) => {
    const held = list.filter((s) => s.phase === 'held' && !s.heldReason).slice(0, HELD_REASON_QUERY_LIMIT);
    await new Pool(16).map(held, async (s) => {
      try {
        s.heldReason = (await actions.state(s.host, s.service, timeoutMs))?.held?.reason ?? null;
      } catch {
        // stays unknown
      }
    });
    return list.map(gauge);
  };
  return async () => {
    if (!useQueries) return withHeldReasons(await actions.listFromVisibility());
    return (await actions.states({ timeoutMs })).map(({ svc, state, error }) =>
      error
        ? { host: svc.host, service: svc.name, error: readErrorReason(error) }
        : gauge(actions.summaryOf(svc, state)),
    );
  };
}
