// Escalations: a JSON POST to every configured webhook. The activity is retried until every
// webhook has taken it; webhooks that already answered 2xx are remembered in heartbeat details
// so a retry does not post to them again. Delivery is at-least-once: receivers dedupe on `id`.
import { log } from '@temporalio/activity';
import type { WebhookConfig } from '../config/config';
import type { EscalationPayload } from '../workflows/definitions';

export type { EscalationPayload };
import { activityHeartbeat, lastHeartbeatDetails } from './context';

export interface DeliveryResult {
  delivered: string[];
}

export class EscalationDeliveryError extends Error {
  override name = 'EscalationDeliveryError';
}

export async function deliverEscalation(
  webhooks: WebhookConfig[],
  payload: EscalationPayload,
  onFailure?: (url: string, why: string) => void,
): Promise<DeliveryResult> {
  const done = new Set(lastHeartbeatDetails<{ delivered?: string[] }>()?.delivered ?? []);
  const failures: string[] = [];
  for (const hook of webhooks) {
    if (done.has(hook.url)) continue;
    try {
      const res = await fetch(hook.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'selfheal', ...hook.headers },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(hook.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status < 200 || res.status >= 300) throw new Error(`HTTP ${res.status}`);
      done.add(hook.url);
      activityHeartbeat({ delivered: [...done] });
    } catch (err) {
      const why = (err as Error).message;
      failures.push(`${hook.url}: ${why}`);
      onFailure?.(hook.url, why);
    }
  }
  if (failures.length) {
    log.warn('escalation not delivered everywhere yet; will retry', { id: payload.id, failures });
    throw new EscalationDeliveryError(`escalation ${payload.id} not delivered to ${failures.join('; ')}`);
  }
  return { delivered: [...done] };
}
