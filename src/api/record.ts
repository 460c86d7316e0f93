// api.recordDeliveries: every accepted webhook body, appended as one JSON line
// `{"receivedAt": ISO, "body": {...}}`, so `selfheal simulate --alerts FILE` can replay it.
// Bounded: past MAX_RECORD_BYTES the file moves to FILE.1 (replacing the previous one) and a new
// one starts, so at most twice the limit is kept. Recording never fails or slows a request much:
// writes are queued one at a time and their errors only logged.
import { appendFile, rename, stat } from 'node:fs/promises';

/** Size at which the recording file is rotated to FILE.1. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;
/** Lines waiting to be written at most; past it new ones are dropped (and counted in the log). */
export const MAX_PENDING_RECORDS = 1_000;

export class DeliveryRecorder {
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private size: number | null = null;

  constructor(
    readonly file: string,
    private readonly onError: (message: string) => void,
    private readonly maxBytes = MAX_RECORD_BYTES,
  ) {}

  /** Queues one delivery; resolves once written (or given up). */
  record(body: unknown, receivedAt = new Date()): Promise<void> {
    if (this.pending >= MAX_PENDING_RECORDS) {
      this.onError(`recordDeliveries: ${MAX_PENDING_RECORDS} lines waiting; dropping one`);
      return this.chain;
    }
    const line = `${JSON.stringify({ receivedAt: receivedAt.toISOString(), body })}\n`;
    this.pending++;
    this.chain = this.chain
      .then(() => this.write(line))
      .catch((err: Error) => this.onError(`recordDeliveries: cannot write ${this.file}: ${err.message}`))
      .finally(() => this.pending--);
    return this.chain;
  }

  /** Resolves once every queued line is written. */
  flush(): Promise<void> {
    return this.chain;
  }

  private async write(line: string): Promise<void> {
    if (this.size == null)
      this.size = await stat(this.file).then(
        (s) => s.size,
        () => 0,
      );
    const bytes = Buffer.byteLength(line);
    if (this.size > 0 && this.size + bytes > this.maxBytes) {
      await rename(this.file, `${this.file}.1`);
      this.size = 0;
    }
    await appendFile(this.file, line, { mode: 0o640 });
    this.size += bytes;
  }
}
