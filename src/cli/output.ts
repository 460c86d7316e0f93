// Human-readable output for the CLI: tables and a service's detailed state.
import type { ServiceSummary, UnreadableSummary } from '../client/actions';
import { formatDuration } from '../policy/duration';
import type { ServiceStateView } from '../workflows/definitions';
import type { PollReport } from './poll';

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [fmt(headers), ...rows.map(fmt)].join('\n');
}

/** Said (on stderr) when a list came from the visibility index rather than from every workflow. */
export const INDEX_NOTE =
  'selfheal: read from the Temporal visibility index (one call; can be a few seconds behind, restarts in ' +
  'the last hour not shown); --exact queries every workflow\n';

/** `fromIndex`: the list came from the visibility index, where a quiet service and a new one look alike. */
export function statusTable(services: (ServiceSummary | UnreadableSummary)[], fromIndex = false): string {
  const rows = services.map((s) =>
    s.readError !== undefined
      ? [s.host, s.service, s.status, s.phase, '-', '-', 'state unreadable (see below)']
      : [
          s.host,
          s.service,
          s.status,
          s.paused ? `${s.phase} (paused)` : s.heldReason ? `${s.phase} (${s.heldReason})` : s.phase,
          String(s.consecutiveFailures),
          s.restartsLastHour === undefined ? '-' : String(s.restartsLastHour),
          s.incident ?? (s.exists || fromIndex ? '-' : 'never alerted'),
        ],
  );
  return table(['HOST', 'SERVICE', 'STATUS', 'PHASE', 'FAILURES', 'RESTARTS/1h', 'INCIDENT'], rows);
}

function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const d = Date.parse(iso) - now;
  return d >= 0 ? `${iso} (in ${formatDuration(d)})` : `${iso} (${formatDuration(-d)} ago)`;
}

export function stateDetails(
  s: ServiceStateView | null,
  host: string,
  service: string,
  uiUrl: string | null,
  namespace: string,
): string {
  const lines: string[] = [];
  const kv = (k: string, v: string) => lines.push(`${(k + ':').padEnd(22)}${v}`);
  kv('Service', `${service} on ${host}`);
  if (!s) {
    kv('Status', 'OK (no workflow yet: it has never alerted)');
    return lines.join('\n');
  }
  kv(
    'Workflow',
    s.workflowId +
      (uiUrl
        ? `  ${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(s.workflowId)}`
        : ''),
  );
  kv('Status', `${s.status}  (phase ${s.phase}${s.held ? `, ${s.held.reason}: ${s.held.detail}` : ''})`);
  if (s.paused)
    kv(
      'Paused',
      `${s.pausedUntil ? `until ${s.pausedUntil}` : 'until resumed'}${s.pauseReason ? ` — ${s.pauseReason}` : ''}`,
    );
  kv('Firing alerts', s.firingAlerts.length ? s.firingAlerts.join(', ') : '-');
  if (s.incident) {
    kv('Incident', `${s.incident.id} opened ${ago(s.incident.openedAt)}, alerts ${s.incident.alertnames.join(', ')}`);
    kv('Attempts', `${s.incident.attempts} (duplicate alerts: ${s.incident.duplicateAlerts})`);
    if (s.incident.waitUntil) kv('Waiting until', ago(s.incident.waitUntil));
    if (s.incident.summary) kv('Summary', s.incident.summary);
  } else kv('Incident', 'none');
  kv('Consecutive failures', String(s.consecutiveFailures));
  kv('Restarts last hour', `${s.restartsLastHour}${s.policy ? ` of ${s.policy.maxRestartsPerHour}` : ''}`);
  if (s.cooldownUntil) kv('Cooldown until', ago(s.cooldownUntil));
  if (s.budgetFreesAt) kv('Budget frees at', ago(s.budgetFreesAt));
  if (s.lastEscalation)
    kv('Last escalation', `${s.lastEscalation.event} ${ago(s.lastEscalation.at)}: ${s.lastEscalation.message}`);
  const actions = [s.canApprove && 'approve', s.canSkip && 'skip', s.paused ? 'resume' : 'pause'].filter(Boolean);
  kv('Possible actions', `selfheal ${actions.join('|')} ${service} --host ${host}`);
  kv(
    'Totals',
    `${s.totals.incidents} incidents, ${s.totals.restarts} restarts, ${s.totals.failures} failed attempts, ${s.totals.escalations} escalations`,
  );
  if (s.recentAttempts.length) {
    lines.push('', 'Recent attempts:');
    lines.push(
      table(
        ['ATTEMPT', 'AT', 'RESULT', 'REASON', 'RESTARTED', 'APPROVED', 'TOOK'],
        s.recentAttempts
          .slice()
          .reverse()
          .map((a) => [
            a.id,
            a.at,
            a.result,
            a.reason,
            a.restarted ? 'yes' : 'no',
            a.approved ? 'yes' : 'no',
            formatDuration(a.durationMs),
          ]),
      )
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
  }
  return lines.join('\n');
}

/** What `selfheal status` says on stderr about services whose state could not be read. */
export function unreadableReport(services: (ServiceSummary | UnreadableSummary)[]): string | null {
  const bad = services.filter((s): s is UnreadableSummary => s.readError !== undefined);
  if (!bad.length) return null;
  return [
    `${bad.length} service(s) could not be read (the others are current):`,
    ...bad.map((s) => `  ${s.service} on ${s.host}: ${s.readError}`),
  ].join('\n');
}

/** What one `selfheal poll` pass did, for the terminal. */
export function pollSummary(r: PollReport, dryRun: boolean): string {
  const notActedOn = r.notActedOn
    .slice(0, 20)
    .map((x) => `  not acted on: ${x.service ?? '?'} on ${x.host ?? '?'} (${x.alertname ?? '?'}): ${x.reason}\n`);
  return (
    `poll: ${r.firingAlerts} firing alert(s) in Prometheus; ${dryRun ? 'would signal' : 'signalled'} ${r.signalled.length}, ` +
    `${r.unchanged} unchanged, ${r.ignored} ignored, ${r.rejected} rejected\n` +
    r.signalled
      .map((s) => `  ${s.status.padEnd(8)} ${s.service} on ${s.host} (${s.alertnames.join(', ')})\n`)
      .join('') +
    notActedOn.join('') +
    (r.notActedOn.length > 20 ? `  ... and ${r.notActedOn.length - 20} more not acted on\n` : '') +
    r.notes.map((n) => `  note: ${n}\n`).join('')
  );
}
