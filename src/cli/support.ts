// What every command shares: exit codes, reading the config, a client for one command, turning
// action errors into exit codes, and running until Ctrl-C.
import { Client, Connection } from '@temporalio/client';
import { InvalidArgumentError } from 'commander';
import { pauseDurationProblem, resolveService, ServiceActions } from '../client/actions';
import { ActionError } from '../client/call';
import { ConfigError, loadConfig, type Config } from '../config/config';
import { parseDuration } from '../policy/duration';
import type { RunOptions } from '../runtime';
import { clientConnectionOptions, temporalAddress } from '../temporal/connection';

/** Exit codes, documented in --help. */
export const EXIT = { ok: 0, error: 1, usage: 2, conflict: 3, unavailable: 4 } as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export function durationArg(value: string): number {
  const ms = parseDuration(value);
  if (!ms) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a duration; write it like 30m, 2h or 1h30m`);
  const problem = pauseDurationProblem(ms, '--for');
  if (problem) throw new InvalidArgumentError(`${value} is ${problem}`);
  return ms;
}

export function readConfig(file: string | undefined): Config {
  try {
    return loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
}

export async function withClient<T>(config: Config, fn: (client: Client) => Promise<T>): Promise<T> {
  let connection: Connection;
  try {
    connection = await Connection.connect(clientConnectionOptions(config));
  } catch (err) {
    throw new CliError(
      `cannot reach Temporal at ${temporalAddress(config)}: ${(err as Error).message.split('\n')[0]}\n` +
        (config.temporal.embedded ? 'Is `selfheal start` running?' : 'Check temporal.address in the config.'),
      EXIT.unavailable,
    );
  }
  try {
    return await fn(new Client({ connection, namespace: config.temporal.namespace }));
  } finally {
    await connection.close();
  }
}

/** Checks the service against the config before any connection is made. */
export function resolveOrExit(config: Config, service: string, host: string | undefined) {
  try {
    return resolveService(config, service, host);
  } catch (err) {
    return mapActionError(err);
  }
}

/** Runs fn with the service actions of a client connected for this command; action errors become exit codes. */
export function withActions<T>(config: Config, fn: (actions: ServiceActions) => Promise<T>): Promise<T> {
  return withClient(config, async (client) => {
    try {
      return await fn(new ServiceActions(client, config, 10_000));
    } catch (err) {
      return mapActionError(err);
    }
  });
}

export function mapActionError(err: unknown): never {
  if (err instanceof ActionError) {
    const code =
      err.code === 'conflict'
        ? EXIT.conflict
        : err.code === 'unavailable'
          ? EXIT.unavailable
          : err.code === 'unreadable'
            ? EXIT.error
            : EXIT.usage;
    throw new CliError(err.message, code);
  }
  throw err;
}

/** Runs until Ctrl-C / SIGTERM, then stops everything in order. */
export async function runUntilSignal(opts: RunOptions): Promise<void> {
  // Loaded here, not at start-up: the worker SDK and the API server are only for long-running commands.
  // A require, not import(): run from sources (bin/selfheal.js without dist/) tsx hooks require only,
  // and import('../runtime.js') fails there with "Cannot find module"; compiled, both work.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { runSelfheal } = require('../runtime') as typeof import('../runtime');
  const running = await runSelfheal(opts);
  let signals = 0;
  await new Promise<void>((resolve, reject) => {
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        process.stderr.write('forced exit\n');
        process.exit(130);
      }
      process.stdout.write(`\n${sig}: stopping (press Ctrl-C again to force) ...\n`);
      running.stop().then(resolve, reject);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    running.done.then(
      () => running.stop().then(() => reject(new CliError('a worker stopped unexpectedly', EXIT.error)), reject),
      (err: unknown) => running.stop().then(() => reject(err as Error), reject),
    );
  });
  process.stdout.write('selfheal stopped.\n');
}
