// `selfheal start` keeps its embedded Temporal dev server running: a server that dies is reported
// loudly (a log line, selfhealing_temporal_up at 0, selfhealing_embedded_temporal_restarts_total)
// and started again with backoff; after too many failed starts in a row selfheal gives up and
// exits non-zero with the reason, rather than running on without a Temporal.
import { DevServer, type DevServerOptions } from './dev-server';

export interface SupervisorHooks {
  out: (line: string) => void;
  /** The server died (before the restart is tried). */
  onDown?: () => void;
  /** A restarted server is ready. */
  onRestarted?: (server: DevServer) => void;
  /** First backoff, doubled after every failed start up to maxBackoffMs (tests shorten them). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Failed starts in a row before giving up. */
  maxFailedStarts?: number;
}

export interface SupervisedDevServer {
  /** The server running now (the first one until it dies). */
  readonly current: DevServer;
  /** Rejects when the supervisor gives up; never resolves otherwise. */
  readonly failed: Promise<never>;
  stop(): Promise<void>;
}

export function superviseDevServer(
  first: DevServer,
  opts: DevServerOptions,
  hooks: SupervisorHooks,
): SupervisedDevServer {
  let current = first;
  let stopping = false;
  let wake: (() => void) | null = null;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const backoff0 = hooks.backoffMs ?? 1_000;
  const maxBackoff = hooks.maxBackoffMs ?? 30_000;
  const maxFailed = hooks.maxFailedStarts ?? 10;

  async function loop(): Promise<never> {
    for (;;) {
      await current.exited;
      if (stopping) return new Promise<never>(() => undefined);
      hooks.onDown?.();
      let delay = backoff0;
      for (let failed = 0; ;) {
        hooks.out(
          `ERROR the embedded Temporal dev server exited unexpectedly (code ${current.exitStatus}; log ${current.logFile}); ` +
            `restarting it in ${delay / 1000}s`,
        );
        await sleep(delay);
        if (stopping) return new Promise<never>(() => undefined);
        try {
          current = await DevServer.start(opts, hooks.out);
          if (stopping) {
            await current.stop();
            return new Promise<never>(() => undefined);
          }
          hooks.out(`the embedded Temporal dev server is back at ${current.address}`);
          hooks.onRestarted?.(current);
          break;
        } catch (err) {
          failed++;
          const message = (err as Error).message;
          if (failed >= maxFailed) {
            throw new Error(
              `the embedded Temporal dev server died and could not be started again (${failed} tries): ${message}`,
              { cause: err },
            );
          }
          hooks.out(`ERROR restarting the embedded Temporal dev server failed: ${message.split('\n')[0]}`);
          delay = Math.min(delay * 2, maxBackoff);
        }
      }
    }
  }

  const failed = loop();
  // Handled by whoever awaits it (runtime's `done`); never an unhandled rejection in between.
  failed.catch(() => undefined);
  return {
    get current() {
      return current;
    },
    failed,
    async stop() {
      stopping = true;
      wake?.();
      await current.stop();
    },
  };
}
