// The append-only audit log: one JSON object per line. Appends from one process are serialized;
// each line is a single write to a file opened with O_APPEND, so concurrent writers never interleave.
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface AuditRecord {
  /** When the decision was made (workflow time for workflow decisions). */
  time: string;
  host: string;
  service: string;
  workflowId: string;
  /** What happened: `incident-opened`, `decision`, `restart`, `attempt-finished`, `escalated`, ... */
  event: string;
  /** What was decided: `validate`, `restart`, `no-restart`, `wait-cooldown`, `escalate`, ... */
  decision: string;
  reason: string;
  incidentId?: string | null;
  attemptId?: string;
  result?: 'success' | 'failure';
  /** The restart command ran (counts towards restarts_total and the budget). */
  restarted?: boolean;
  escalation?: string;
  phase?: string;
  status?: string;
  consecutiveFailures?: number;
  restartsLastHour?: number;
  by?: string | null;
  detail?: string;
}

export class AuditLog {
  private tail: Promise<void> = Promise.resolve();
  private dirReady: Promise<unknown> | null = null;

  constructor(readonly file: string) {}

  append(record: AuditRecord): Promise<void> {
    const line = JSON.stringify(record) + '\n';
    const write = async () => {
      this.dirReady ??= mkdir(dirname(this.file), { recursive: true });
      await this.dirReady;
      await appendFile(this.file, line, { flag: 'a', mode: 0o640 });
    };
    const next = this.tail.then(write, write);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
