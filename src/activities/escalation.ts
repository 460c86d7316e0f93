// Escalations: a JSON POST to every configured webhook. The activity is retried until every
// webhook has taken it; webhooks that already answered 2xx are remembered in heartbeat details
// so a retry does not post to them again. Delivery is at-least-once: receivers dedupe on `id`.
// A permanent refusal (4xx other than 408 Request Timeout and 429 Too Many Requests) is not
// retried: it is reported in the log and the metrics, since retrying cannot fix it.
// Webhook URLs are secrets (a Slack-style webhook URL grants posting): only their origin ever
// appears in messages, which end up in Temporal history, the UI and logs.
import type { WebhookConfig } from '../config/config';
import type { EscalationPayload } from '../workflows/definitions';
import { activityHeartbeat, activityLog, lastHeartbeatDetails } from './context';

export type { EscalationPayload };

export interface DeliveryResult {
  /** Receivers (by redacted name) that took the escalation. */
  delivered: string[];
  /** Receivers that refused it for good (4xx), with the answer; not retried. */
  refused: string[];
}

export class EscalationDeliveryError extends Error {
  override name = 'EscalationDeliveryError';
}

/** `https://hooks.slack.com/services/T0/B0/secret` → `https://hooks.slack.com/…` (scheme, host and port only). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}/…`;
  } catch {
    return '<invalid url>';
  }
}

/** Whether an HTTP answer means "this will never work", so retrying is pointless. */
export function isPermanentRefusal(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

export interface DeliveryHooks {
  /** A receiver failed this time (it will be retried). */
  onFailure?: (receiver: string, why: string) => void;
  /** A receiver refused for good (not retried). */
  onPermanentFailure?: (receiver: string, why: string) => void;
}

export async function deliverEscalation(
  webhooks: WebhookConfig[],
  payload: EscalationPayload,
  hooks: DeliveryHooks = {},
): Promise<DeliveryResult> {
  const log = activityLog();
  // Keyed by position and origin: the heartbeat details (stored by Temporal) never hold a full URL.
  const key = (i: number, hook: WebhookConfig) => `${i}:${redactUrl(hook.url)}`;
  const previous = lastHeartbeatDetails<{ delivered?: string[]; refused?: string[] }>();
  const done = new Set(previous?.delivered ?? []);
  const refused = new Set(previous?.refused ?? []);
  const failures: string[] = [];
  for (const [i, hook] of webhooks.entries()) {
    const k = key(i, hook);
    if (done.has(k) || [...refused].some((r) => r.startsWith(`${k} `))) continue;
    let status: number;
    try {
      const res = await fetch(hook.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'selfheal', ...hook.headers },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(hook.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      status = res.status;
    } catch (err) {
      // Network errors can quote the URL: keep only the error's kind.
      const e = err as Error & { cause?: { code?: string } };
      const why = e.name === 'TimeoutError' ? `no answer within ${hook.timeoutMs} ms` : (e.cause?.code ?? e.name);
      failures.push(`${k}: ${why}`);
      hooks.onFailure?.(k, why);
      continue;
    }
    if (status >= 200 && status < 300) {
      done.add(k);
    } else if (isPermanentRefusal(status)) {
      const why = `HTTP ${status}`;
      refused.add(`${k} ${why}`);
      hooks.onPermanentFailure?.(k, why);
      log.error('escalation refused by its receiver; not retrying (fix the receiver or escalation.webhooks)', {
        id: payload.id,
        event: payload.event,
        receiver: k,
        status,
      });
    } else {
      failures.push(`${k}: HTTP ${status}`);
      hooks.onFailure?.(k, `HTTP ${status}`);
    }
    activityHeartbeat({ delivered: [...done], refused: [...refused] });
  }
  if (failures.length) {
    log.warn('escalation not delivered everywhere yet; will retry', { id: payload.id, failures });
    throw new EscalationDeliveryError(`escalation ${payload.id} not delivered to ${failures.join('; ')}`);
  }
  return { delivered: [...done], refused: [...refused] };
}
