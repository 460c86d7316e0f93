// What Temporal accepted of a webhook delivery the API answered 503 (a deadline passed, or one
// signal failed, after the others got through). Alertmanager sends the same notification again, and
// that resend sends only the signals not yet accepted: in an alert storm every resend of a
// 100-alert request was otherwise 100 more signals and workflow tasks (BENCHMARKS.md, target 4).
//
// Only a resend of a delivery answered 503 is shortened: one answered 200 and sent again (a repeat
// at repeat_interval, a second Alertmanager of an HA pair) is delivered in full, as before. An entry
// is keyed by the planned signals themselves (workflow, status, alert identities, names, summary),
// so it can only stand for the very same signals; it is used once (the resend takes it), and
// bounded in age and number. A lost entry costs only repeated signals, which are harmless by design.
import { createHash } from 'node:crypto';
import type { PlannedSignal } from '../client/alert-intake';

/** How long a resend may take to come: Alertmanager retries within its group_interval (5 min by default). */
export const RESEND_TTL_MS = 10 * 60_000;
/** Deliveries answered 503 remembered at most (the oldest is forgotten first). */
export const MAX_RESEND_ENTRIES = 1_000;

interface Entry {
  at: number;
  accepted: Set<number>;
}

export class ResendLedger {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs = RESEND_TTL_MS,
    private readonly max = MAX_RESEND_ENTRIES,
    private readonly now: () => number = Date.now,
  ) {}

  static key(signals: readonly PlannedSignal[]): string {
    return createHash('sha256').update(JSON.stringify(signals)).digest('base64url');
  }

  /**
   * The signals of this delivery Temporal accepted during its last attempt answered 503 (indexes
   * into the plan), taken out of the ledger; an empty set for a delivery not seen failing.
   */
  take(key: string): Set<number> {
    const e = this.entries.get(key);
    this.entries.delete(key);
    return e && this.now() - e.at <= this.ttlMs ? e.accepted : new Set();
  }

  /**
   * After a 503: remembers what got through. The set stays live: signals still under way when the
   * answer went out are added when Temporal accepts them.
   */
  keep(key: string, accepted: Set<number>): void {
    // Kept even when empty: after a deadline the signals under way may all get through yet.
    this.entries.delete(key);
    this.entries.set(key, { at: this.now(), accepted });
    const cutoff = this.now() - this.ttlMs;
    for (const [k, e] of this.entries) {
      if (this.entries.size <= this.max && e.at >= cutoff) break;
      this.entries.delete(k);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
