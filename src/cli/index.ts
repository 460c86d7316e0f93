// The `selfheal` command line.
import { addBreakerCommands } from './breaker';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { QUERY_ALL_LIMIT } from '../client/actions';
import { isUnavailable } from '../client/call';
import { configPath } from '../config/config';
import { resolveHost } from '../config/names';
import { DevServer } from '../temporal/dev-server';
import { INDEX_NOTE, pollSummary, stateDetails, statusTable, unreadableReport } from './output';
import { pollOnce } from './poll';
import { addSimulateCommand } from './simulate';
import { privilegesSnippet, type PrivilegeFormat } from './privileges';
import {
  CliError,
  durationArg,
  EXIT,
  mapActionError,
  readConfig,
  resolveOrExit,
  runUntilSignal,
  withActions,
  withClient,
} from './support';

export { EXIT } from './support';

/** The version in package.json (two folders up from src/cli and from dist/cli alike). */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string })
      .version;
  } catch {
    return 'unknown';
  }
}

export function buildProgram(): Command {
  const program = new Command();
  // Before any subcommand is defined: they inherit it, so errors come back to main() for exit codes.
  program.exitOverride();
  program
    .name('selfheal')
    .description(
      'Self-healing remediator: alerts in; durable Temporal workflows validate, restart (systemctl) on the right host, verify, and escalate to a human.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: false })
    .addHelpText(
      'after',
      `
Configuration: --config FILE, else $SELFHEAL_CONFIG, else ./selfheal.yaml (validate with check-config).
Host: --host NAME, else $SELFHEAL_HOST, else this machine's short hostname (up to the first dot).
Exit codes: 0 ok, 1 error, 2 bad usage or config, 3 nothing to act on (409), 4 Temporal unreachable.

Examples:
  selfheal start --config examples/selfheal.yaml --host homelab
  selfheal status
  selfheal approve crypto-agent@BTC_USDT.service --reason "checked the exchange API"
  selfheal pause jira-worker.service --for 2h --reason "upgrade"`,
    );

  const configOpt = () =>
    new Option('-c, --config <file>', 'config file (default: $SELFHEAL_CONFIG or ./selfheal.yaml)');
  const hostOpt = (what: string) => new Option('--host <name>', what);

  program
    .command('start')
    .description(
      'run everything on this machine: embedded Temporal (unless temporal.address is set), control and host workers, API',
    )
    .addOption(configOpt())
    .addOption(hostOpt('host whose services this machine restarts'))
    .option('--no-api', 'do not start the HTTP API')
    .action(async (o: { config?: string; host?: string; api: boolean }) => {
      const config = readConfig(o.config);
      await runUntilSignal({
        config,
        host: resolveHost(o.host),
        control: true,
        api: o.api,
        devServer: true,
        generateTokens: true,
      });
    });

  program
    .command('worker')
    .description('run a host worker (restarts this host’s services) and/or the control worker (workflows)')
    .addOption(configOpt())
    .addOption(hostOpt('serve this host (default with no --control: $SELFHEAL_HOST or the hostname)'))
    .option('--control', 'run the control worker (entity workflows, audit, escalations)')
    .action(async (o: { config?: string; host?: string; control?: boolean }) => {
      const config = readConfig(o.config);
      const host = o.host || !o.control ? resolveHost(o.host) : null;
      await runUntilSignal({ config, host, control: !!o.control, api: false, devServer: false });
    });

  program
    .command('api')
    .description('run the HTTP API (Alertmanager webhook, state, human actions, /metrics)')
    .addOption(configOpt())
    .action(async (o: { config?: string }) => {
      const config = readConfig(o.config);
      await runUntilSignal({ config, host: null, control: false, api: true, devServer: false });
    });

  program
    .command('dev-server')
    .description('run only the embedded Temporal dev server (SQLite under temporal.dataDir)')
    .addOption(configOpt())
    .action(async (o: { config?: string }) => {
      const config = readConfig(o.config);
      const server = await DevServer.start(DevServer.optionsFor(config), (l) => process.stdout.write(l + '\n'));
      process.stdout.write(
        `Temporal dev server at ${server.address}, UI ${server.uiUrl}, state ${server.dbFile}\nPress Ctrl-C to stop.\n`,
      );
      await new Promise<void>((resolve) => {
        const stop = () => void server.stop().then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });

  program
    .command('status [service]')
    .description('show every guarded service, or one service in detail')
    .addOption(configOpt())
    .addOption(hostOpt('the host, when the service name is on several hosts'))
    .option('--json', 'machine-readable output')
    .option('--exact', `query every workflow's own state, even past ${QUERY_ALL_LIMIT} services (slower)`)
    .action(
      async (service: string | undefined, o: { config?: string; host?: string; json?: boolean; exact?: boolean }) => {
        const config = readConfig(o.config);
        const svc = service ? resolveOrExit(config, service, o.host) : null;
        await withActions(config, async (actions) => {
          if (svc) {
            const st = await actions.state(svc.host, svc.name);
            process.stdout.write(
              (o.json
                ? JSON.stringify({ summary: actions.summaryOf(svc, st), state: st }, null, 2)
                : stateDetails(st, svc.host, svc.name, config.temporal.uiUrl, config.temporal.namespace)) + '\n',
            );
          } else {
            const { source, services } = await actions.overview({ exact: o.exact });
            const all = services.filter((s) => !o.host || s.host === o.host);
            process.stdout.write((o.json ? JSON.stringify(all, null, 2) : statusTable(all, source === 'index')) + '\n');
            if (source === 'index') process.stderr.write(INDEX_NOTE);
            const unreadable = unreadableReport(all);
            if (unreadable) throw new CliError(unreadable, EXIT.error);
          }
        });
      },
    );

  const humanAction = (name: 'approve' | 'skip' | 'resume', description: string) =>
    program
      .command(`${name} <service>`)
      .description(description)
      .addOption(configOpt())
      .addOption(hostOpt('the host, when the service name is on several hosts'))
      .option('--reason <text>', 'why (kept in the audit log)')
      .option('--by <name>', 'who (default: $USER)')
      .action(async (service: string, o: { config?: string; host?: string; reason?: string; by?: string }) => {
        const config = readConfig(o.config);
        const svc = resolveOrExit(config, service, o.host);
        await withActions(config, async (actions) => {
          const p = { by: o.by ?? process.env.USER ?? 'cli', reason: o.reason };
          const r = await actions[name](svc, p);
          process.stdout.write(`${r.message}\n`);
        });
      });
  humanAction('approve', 'approve one restart now, even if escalated, in cooldown or out of budget');
  humanAction('skip', 'drop the current incident and go back to watching');

  program
    .command('pause <service>')
    .description('pause self-healing of a service (maintenance); alerts are recorded but nothing is restarted')
    .addOption(configOpt())
    .addOption(hostOpt('the host, when the service name is on several hosts'))
    .option('--for <duration>', 'pause for this long (e.g. 30m, 2h); default: until resume', durationArg)
    .option('--reason <text>', 'why (kept in the audit log)')
    .option('--by <name>', 'who (default: $USER)')
    .action(
      async (service: string, o: { config?: string; host?: string; for?: number; reason?: string; by?: string }) => {
        const config = readConfig(o.config);
        await withActions(config, async (actions) => {
          const svc = actions.resolve(service, o.host);
          const r = await actions.pause(svc, {
            by: o.by ?? process.env.USER ?? 'cli',
            reason: o.reason,
            forMs: o.for ?? null,
          });
          process.stdout.write(`${r.message}\n`);
        });
      },
    );
  humanAction('resume', 'resume self-healing of a paused service');

  addBreakerCommands(program, configOpt);

  program
    .command('check-config [file]')
    .description('validate a config file and explain every problem')
    .action((file: string | undefined) => {
      const path = configPath(file);
      const config = readConfig(path);
      const hosts = [...new Set(config.services.map((s) => s.host))];
      process.stdout.write(
        `${path}: OK — ${config.services.length} service(s) on ${hosts.length} host(s) (${hosts.join(', ')}); ` +
          `Temporal ${config.temporal.embedded ? 'embedded' : config.temporal.address}, API ${config.api.listen}` +
          `${config.api.token ? '' : ' (no api.token: `selfheal start` generates one; `selfheal api` refuses)'}\n`,
      );
    });

  program
    .command('poll')
    .description('one pass over Prometheus’ firing alerts, feeding the workflows (the no-Alertmanager option)')
    .addOption(configOpt())
    .option('--dry-run', 'show what would be signalled, send nothing')
    .action(async (o: { config?: string; dryRun?: boolean }) => {
      const config = readConfig(o.config);
      await withClient(config, async (client) => {
        try {
          const r = await pollOnce(client, config, { dryRun: o.dryRun });
          process.stdout.write(pollSummary(r, !!o.dryRun));
        } catch (err) {
          if (isUnavailable(err)) mapActionError(err);
          throw new CliError(`poll failed: ${(err as Error).message}`, EXIT.error);
        }
      });
    });

  program
    .command('privileges')
    .description('print a polkit rule or sudoers snippet that lets the worker restart only the configured units')
    .addOption(configOpt())
    .addOption(hostOpt('the host to generate it for (default: $SELFHEAL_HOST or the hostname)'))
    .addOption(new Option('--format <format>', 'polkit or sudoers').choices(['polkit', 'sudoers']).default('polkit'))
    .option('--user <name>', 'the user the host worker runs as', 'selfheal')
    .action((o: { config?: string; host?: string; format: PrivilegeFormat; user: string }) => {
      const config = readConfig(o.config);
      process.stdout.write(privilegesSnippet(config, resolveHost(o.host), { format: o.format, user: o.user }));
    });

  addSimulateCommand(program);

  return program;
}

export async function main(argv = process.argv): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      // commander already printed help or the usage error.
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help'
        ? EXIT.ok
        : EXIT.usage;
    }
    if (err instanceof CliError) {
      process.stderr.write(`selfheal: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`selfheal: ${(err as Error).message ?? String(err)}\n`);
    return EXIT.error;
  }
}
