// `selfheal breaker status|trip|reset`: the fleet's mass-failure breakers by hand.
import { Option, type Command } from 'commander';
import { breakerCommand, breakerStatus, scopeFor } from '../client/breaker';
import type { BreakerView } from '../workflows/fleet-definitions';
import { CliError, EXIT, mapActionError, readConfig, withClient } from './support';

/** The breakers as a table: scope, state, open incidents of guarded services, since, why. */
export function breakerTable(v: BreakerView | null): string {
  if (!v) return 'fleet coordinator not started yet: no incident has been reported; every breaker is closed';
  const rows = v.scopes.map((s) => [
    s.scope,
    s.state + (s.manual ? ' (by hand)' : '') + (s.armed ? '' : ' (disarmed)'),
    `${s.count.open}/${s.count.total}`,
    s.state === 'closed' ? '' : s.sinceIso,
    s.reason,
  ]);
  const head = ['SCOPE', 'STATE', 'OPEN', 'SINCE', 'REASON'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  const held = v.held.map((h) => `  ${h.host}/${h.service}: ${h.reason} (${h.detail}) since ${h.since}`);
  return [
    line(head),
    ...rows.map(line),
    '',
    `restarts in flight: ${v.restartsInFlight}` +
      (Object.keys(v.restartsInFlightByHost).length
        ? ` (${Object.entries(v.restartsInFlightByHost)
            .map(([h, n]) => `${h}: ${n}`)
            .join(', ')})`
        : ''),
    `held: ${v.held.length}`,
    ...held,
  ].join('\n');
}

export function addBreakerCommands(program: Command, configOpt: () => Option): void {
  const breaker = program
    .command('breaker')
    .description('the mass-failure breakers (fleet-wide and per host): status, trip, reset');

  breaker
    .command('status')
    .description('show each breaker, restarts in flight and held incidents')
    .addOption(configOpt())
    .option('--json', 'machine-readable output')
    .action(async (o: { config?: string; json?: boolean }) => {
      const config = readConfig(o.config);
      await withClient(config, async (client) => {
        const v = await breakerStatus(client, 10_000).catch(mapActionError);
        process.stdout.write((o.json ? JSON.stringify(v, null, 2) : breakerTable(v)) + '\n');
      });
    });

  for (const action of ['trip', 'reset'] as const) {
    breaker
      .command(`${action} [scope]`)
      .description(
        action === 'trip'
          ? 'stop automatic restarts in a scope until a human resets it (scope: fleet (default), a host, or all)'
          : 'close a breaker by hand (scope: fleet (default), a host, or all); held incidents re-check and go on',
      )
      .addOption(configOpt())
      .option('--reason <text>', 'why (kept in the audit log)')
      .option('--by <name>', 'who (default: $USER)')
      .addOption(new Option('--json', 'machine-readable output'))
      .action(
        async (scopeArg: string | undefined, o: { config?: string; reason?: string; by?: string; json?: boolean }) => {
          const config = readConfig(o.config);
          let scope: string;
          try {
            scope = scopeFor(config, scopeArg);
          } catch (err) {
            return mapActionError(err);
          }
          await withClient(config, async (client) => {
            const v = await breakerCommand(
              client,
              { action, scope, by: o.by ?? process.env.USER ?? 'cli', reason: o.reason ?? null },
              20_000,
            ).catch(mapActionError);
            if (!v) throw new CliError('no answer from the fleet coordinator', EXIT.unavailable);
            process.stdout.write(
              (o.json
                ? JSON.stringify(v, null, 2)
                : `breaker ${scope} ${action === 'trip' ? 'tripped' : 'reset'}\n\n${breakerTable(v)}`) + '\n',
            );
          });
        },
      );
  }
}
