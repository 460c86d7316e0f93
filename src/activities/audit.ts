// The append-only audit log: one JSON object per line. Appends from one process are serialized;
// each batch of lines is a single write to a file opened with O_APPEND, so concurrent writers
// (the API and the control worker) never interleave.
//
// The log records decisions; it never takes them. `record()` never throws and never waits on a
// broken disk: a line that cannot be written is held back (bounded), retried on a timer and
// before the next line, and written in order once the file is writable again. Whoever owns the
// log is told when it stops and starts being writable (metrics, a log line).
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AuditEvent, EscalationEvent } from '../workflows/definitions';

export interface AuditRecord {
  /** When the decision was made (workflow time for workflow decisions). */
  time: string;
  host: string;
  service: string;
  workflowId: string;
  /**
   * The decision's identity (`<run id>/<n>`, the n-th audit of that run): a local activity run again
   * after a crash carries the same id, and is written and counted once.
   */
  id?: string;
  /** What happened: one of AUDIT_EVENTS (`incident-opened`, `decision`, `restart`, `attempt-finished`, ...). */
  event: AuditEvent;
  /** What was decided: `validate`, `restart`, `no-restart`, `wait-cooldown`, `escalate`, ... */
  decision: string;
  reason: string;
  incidentId?: string | null;
  attemptId?: string;
  result?: 'success' | 'failure';
  /** The restart command ran (counts towards restarts_total and the budget). */
  restarted?: boolean;
  escalation?: EscalationEvent;
  phase?: string;
  status?: string;
  consecutiveFailures?: number;
  restartsLastHour?: number;
  by?: string | null;
  detail?: string;
}

export interface AuditLogEvents {
  /** The log became unwritable (`error`) or writable again (null). */
  onWritable?(writable: boolean, error: Error | null): void;
  /** A new line could not be written now (it is held back). */
  onWriteFailure?(): void;
  /** Held-back lines dropped because the backlog was full. */
  onDropped?(lines: number): void;
  /** Lines currently held back. */
  onBacklog?(lines: number): void;
}

/** Lines held back while the log is unwritable; beyond this the oldest are dropped (and counted). */
export const AUDIT_BACKLOG_LIMIT = 10_000;
const RETRY_MS = 5_000;

export class AuditLog {
  private tail: Promise<void> = Promise.resolve();
  private backlog: string[] = [];
  private writable = true;
  private retryTimer: NodeJS.Timeout | null = null;
  private events: AuditLogEvents = {};

  constructor(readonly file: string) {}

  /** Who hears about failures; set by the process that owns the metrics. */
  observe(events: AuditLogEvents): void {
    this.events = events;
  }

  /** Appends one line; rejects when it could not be written (the line is not kept). */
  append(record: AuditRecord): Promise<void> {
    return this.serialized(() => this.write([JSON.stringify(record)]));
  }

  /**
   * Appends one line, never throwing: when the log cannot be written the line is held back and
   * written, in order, once it can. Resolves to whether the line reached the file now.
   */
  record(record: AuditRecord): Promise<boolean> {
    const line = JSON.stringify(record);
    return this.serialized(async () => {
      this.hold(line);
      const ok = await this.flush();
      if (!ok) this.events.onWriteFailure?.();
      return ok;
    });
  }

  /** Lines waiting for the log to become writable. */
  get pending(): number {
    return this.backlog.length;
  }

  /** Stops the retry timer (the backlog stays in memory). */
  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  private async write(lines: string[]): Promise<void> {
    // Not cached: a folder that could not be created (or was removed) is tried again next time.
    await mkdir(dirname(this.file), { recursive: true });
    await appendFile(this.file, lines.join('\n') + '\n', { flag: 'a', mode: 0o640 });
  }

  private hold(line: string): void {
    this.backlog.push(line);
    const over = this.backlog.length - AUDIT_BACKLOG_LIMIT;
    if (over > 0) {
      this.backlog.splice(0, over);
      this.events.onDropped?.(over);
    }
    this.events.onBacklog?.(this.backlog.length);
  }

  /** Writes everything held back; on failure keeps it and arms the retry timer. */
  private async flush(): Promise<boolean> {
    if (this.backlog.length === 0) return true;
    const batch = this.backlog.slice();
    try {
      await this.write(batch);
    } catch (err) {
      if (this.writable) {
        this.writable = false;
        this.events.onWritable?.(false, err as Error);
      }
      this.armRetry();
      return false;
    }
    this.backlog.splice(0, batch.length);
    this.events.onBacklog?.(this.backlog.length);
    if (!this.writable) {
      this.writable = true;
      this.events.onWritable?.(true, null);
    }
    return true;
  }

  private armRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.serialized(() => this.flush());
    }, RETRY_MS);
    this.retryTimer.unref();
  }
}
