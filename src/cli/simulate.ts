// `selfheal simulate`: what a policy would have done with a recorded alert history, on Temporal's
// time-skipping test server (its own process), never the live cluster, hosts or audit log.
import { writeFileSync } from 'node:fs';
import { SingleBar } from 'cli-progress';
import { Option, type Command } from 'commander';
import type { Config } from '../config/config';
import { simulate, type SimulationResult } from '../simulate/driver';
import type { AlertHistory } from '../simulate/history';
import { RECOVERY_MODELS, type RecoveryModel } from '../simulate/host';
import { buildReport, type SimulationReport } from '../simulate/report';
import {
  HistoryError,
  historyFromAudit,
  historyFromDeliveries,
  historyFromPrometheus,
  parseFrom,
} from '../simulate/sources';
import { compareReports, formatComparison, formatReport } from '../simulate/text';
import { timelineHtml } from '../simulate/timeline';
import { CliError, EXIT, readConfig } from './support';

interface SimulateFlags {
  from?: string;
  alerts?: string;
  audit?: string;
  prometheus?: string;
  config?: string;
  compare?: string;
  recovery: RecoveryModel;
  json?: boolean;
  out?: string;
}

async function readHistory(o: SimulateFlags, config: Config): Promise<AlertHistory> {
  const given = [o.from, o.alerts, o.audit].filter((x) => x != null).length;
  if (given !== 1) throw new CliError('give exactly one of --from DURATION, --alerts FILE, --audit FILE', EXIT.usage);
  try {
    if (o.alerts) return historyFromDeliveries(o.alerts);
    if (o.audit) return historyFromAudit(config, o.audit);
    const url = o.prometheus ?? config.prometheus.url;
    if (!url) throw new CliError('--from reads Prometheus: give --prometheus URL or set prometheus.url', EXIT.usage);
    const end = Date.now();
    return await historyFromPrometheus(url, { start: parseFrom(o.from!, end), end });
  } catch (err) {
    if (err instanceof HistoryError) throw new CliError(err.message, EXIT.usage);
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CliError((err as Error).message, EXIT.usage);
    throw err;
  }
}

/** A progress bar on stderr when it is a terminal (long runs); nothing otherwise. */
function progress(label: string): { update(done: number, total: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new SingleBar({
    stream: process.stderr,
    format: `${label} [{bar}] {percentage}% | {value}/{total} simulated hours | {duration}s`,
    hideCursor: true,
    clearOnComplete: true,
  });
  let started = false;
  return {
    update(done, total) {
      const h = (ms: number) => Math.round(ms / 3_600_000);
      if (!started) bar.start(h(total), 0);
      started = true;
      bar.update(h(done));
    },
    stop: () => started && bar.stop(),
  };
}

async function run(config: Config, history: AlertHistory, recovery: RecoveryModel, label: string) {
  const p = progress(label);
  try {
    const result = await simulate({ config, history, recovery, onProgress: (d, t) => p.update(d, t) });
    return { result, report: buildReport(result, history.source) };
  } finally {
    p.stop();
  }
}

export function addSimulateCommand(program: Command): void {
  program
    .command('simulate')
    .description(
      'replay recorded alerts through the real workflow under a policy, on a private time-skipping Temporal test server: what would it have done?',
    )
    .option('--from <duration>', 'read ALERTS from Prometheus over the last 7d, 36h, ... (or since an ISO time)')
    .option('--alerts <file>', 'recorded webhook deliveries, one JSON line each (api.recordDeliveries writes them)')
    .option('--audit <file>', 'an audit log: its incidents are the alerts')
    .option('--prometheus <url>', 'Prometheus to read with --from (default: prometheus.url)')
    .option('-c, --config <file>', 'the policy to simulate (default: $SELFHEAL_CONFIG or ./selfheal.yaml)')
    .option('--compare <file>', 'a second config: both side by side, differences marked')
    .addOption(
      new Option('--recovery <model>', 'how the simulated service answers a restart')
        .choices([...RECOVERY_MODELS])
        .default('restart-fixes'),
    )
    .option('--json', 'machine-readable output')
    .option('--out <file>', 'write a self-contained HTML timeline of every service')
    .addHelpText(
      'after',
      `
Recovery models:
  restart-fixes  a restart fixes the service: its alert stops firing at the restart (default)
  as-recorded    the service recovers when the recorded alert resolved, whatever was done

Nothing is restarted, no live workflow is signalled, no escalation is sent and the live audit log is
not written: the real workflow runs on a private test server against a simulated host.

Examples:
  selfheal simulate --alerts deliveries.jsonl --config candidate.yaml --compare selfheal.yaml
  selfheal simulate --from 7d --prometheus http://127.0.0.1:9090 --out timeline.html
  selfheal simulate --audit /var/log/selfheal/selfheal.log --recovery as-recorded --json`,
    )
    .action(async (o: SimulateFlags) => {
      const config = readConfig(o.config);
      const other = o.compare ? readConfig(o.compare) : null;
      const history = await readHistory(o, config);
      const a = await run(config, history, o.recovery, 'simulating');
      const b = other ? await run(other, history, o.recovery, 'comparing') : null;
      const text = b ? formatComparison(a.report, b.report) : formatReport(a.report);
      if (o.out) {
        const runs: { label: string; result: SimulationResult }[] = [{ label: a.report.config, result: a.result }];
        if (b) runs.push({ label: b.report.config, result: b.result });
        writeFileSync(o.out, timelineHtml(runs, text));
      }
      if (o.json) process.stdout.write(`${JSON.stringify(jsonOut(a.report, b?.report ?? null), null, 2)}\n`);
      else {
        const shown = b ? formatComparison(a.report, b.report, { color: !!process.stdout.isTTY }) : text;
        process.stdout.write(shown + (o.out ? `\nTimeline: ${o.out}\n` : ''));
      }
    });
}

function jsonOut(a: SimulationReport, b: SimulationReport | null) {
  return b ? { policy: a, compare: b, differences: compareReports(a, b) } : a;
}
