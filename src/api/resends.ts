// What Temporal accepted of a webhook delivery the API answered 503 (one signal failed, or the
// deadline passed, after others got through). Alertmanager sends the same notification again, and
// that resend sends only the signals not yet accepted: in an alert storm every resend of a
// 100-alert request was otherwise 100 more signals and workflow tasks (BENCHMARKS.md, target 4).
//
// Only a resend of the very same notification is shortened. The key holds the alerts exactly as
// received (status, startsAt, endsAt, fingerprint, labels, annotations) and the signals planned from
// them, so an alert that resolved and fired again (a new startsAt) is never taken for an old one.
// An entry is used once (the resend takes it), a delivery answered 200 leaves none (a repeat at
// repeat_interval, or a second Alertmanager of an HA pair, is delivered in full, as before), and
// one answered 503 while another request with the same key got through is not kept. Bounded in age
// and number: a lost entry costs only repeated signals, which are harmless by design.
import { createHash } from 'node:crypto';
import type { PlannedSignal } from '../client/alert-intake';

/** How long a resend may take to come: Alertmanager retries within its group_interval (5 min by default). */
export const RESEND_TTL_MS = 10 * 60_000;
/** Keys remembered at most (the oldest is forgotten first). */
export const MAX_RESEND_ENTRIES = 1_000;

/** What a failed attempt got through, or (`accepted: null`) that an attempt got everything through. */
interface Entry {
  at: number;
  accepted: Set<number> | null;
}

export class ResendLedger {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs = RESEND_TTL_MS,
    private readonly max = MAX_RESEND_ENTRIES,
    private readonly now: () => number = Date.now,
  ) {}

  /** The key of one delivery: the alerts as received and the signals planned from them. */
  static key(alerts: unknown, signals: readonly PlannedSignal[]): string {
    return createHash('sha256')
      .update(JSON.stringify([alerts, signals]))
      .digest('base64url');
  }

  /**
   * The signals of this delivery Temporal accepted during its last attempt answered 503 (indexes
   * into the plan), taken out of the ledger; an empty set for a delivery not seen failing.
   */
  take(key: string): Set<number> {
    const e = this.entries.get(key);
    if (e?.accepted) this.entries.delete(key);
    return e?.accepted && this.now() - e.at <= this.ttlMs ? e.accepted : new Set();
  }

  /** After a 503: remembers what got through, unless an attempt that started later got everything through. */
  failed(key: string, accepted: Set<number>, startedAt: number): void {
    const e = this.entries.get(key);
    if (e && e.accepted === null && e.at >= startedAt) return;
    this.put(key, { at: this.now(), accepted });
  }

  /** After a 200: nothing of this delivery is left to send. */
  succeeded(key: string): void {
    this.put(key, { at: this.now(), accepted: null });
  }

  private put(key: string, e: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, e);
    const cutoff = this.now() - this.ttlMs;
    for (const [k, old] of this.entries) {
      if (this.entries.size <= this.max && old.at >= cutoff) break;
      this.entries.delete(k);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
