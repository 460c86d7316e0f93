// The report as people read it: one table per policy, and `--compare` side by side with the
// differences marked (and listed, so a script or a test can read exactly what changed).
import { formatDuration } from '../policy/duration';
import { REFUSAL_KINDS, type ServiceReport, type SimulationReport } from './report';

/** One figure of one service (or the total) that differs between two policies. */
export interface Difference {
  service: string;
  metric: string;
  a: number | null;
  b: number | null;
}

const rowName = (s: ServiceReport) => (s.service === 'total' ? 'total' : `${s.service} on ${s.host}`);

/** Every figure of a row, by a stable name: what --compare compares and --json shows. */
export function figures(s: ServiceReport): [string, number | null][] {
  return [
    ['incidents', s.incidents],
    ['restarts', s.restarts],
    ...REFUSAL_KINDS.map((k): [string, number] => [`refused by ${k.kind}`, s.refused[k.kind]]),
    ...Object.entries(s.escalations).map(([k, v]): [string, number] => [`escalations ${k}`, v]),
    ['alert→restart p50 (s)', s.alertToRestart.p50],
    ['alert→restart p95 (s)', s.alertToRestart.p95],
    ['time held (s)', s.heldSeconds],
  ];
}

/**
 * The test server's clock runs in real time while an activity or workflow task is in progress, so
 * simulated durations carry a jitter of about a second (more on a loaded machine): durations that
 * differ by less than this are not a difference between policies.
 */
export const DURATION_TOLERANCE_S = 5;
const DURATIONS = new Set(['alert→restart p50 (s)', 'alert→restart p95 (s)', 'time held (s)']);

export function differs(metric: string, a: number | null, b: number | null): boolean {
  if (a === b) return false;
  if (a == null || b == null || !DURATIONS.has(metric)) return true;
  return Math.abs(a - b) > Math.max(DURATION_TOLERANCE_S, 0.01 * Math.max(a, b));
}

export function compareReports(a: SimulationReport, b: SimulationReport): Difference[] {
  const out: Difference[] = [];
  const byName = new Map(b.services.map((s) => [rowName(s), s]));
  const rows = [...a.services.map((s): [ServiceReport, ServiceReport | undefined] => [s, byName.get(rowName(s))])];
  rows.push([a.total, b.total]);
  for (const [x, y] of rows) {
    const fy = new Map(y ? figures(y) : []);
    for (const [metric, va] of figures(x)) {
      const vb = fy.get(metric) ?? null;
      if (differs(metric, va, vb)) out.push({ service: rowName(x), metric, a: va, b: vb });
    }
  }
  return out;
}

const secs = (v: number | null) => (v == null ? '-' : v === 0 ? '0s' : formatDuration(v * 1000));

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function escalationsText(s: ServiceReport): string {
  const parts = Object.entries(s.escalations)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(', ') : '0';
}

function header(r: SimulationReport): string {
  const rate =
    r.wallSeconds > 0 ? ` (${(r.simulatedHours / r.wallSeconds).toFixed(0)} simulated hours per second)` : '';
  const ignored = Object.entries(r.notActedOn)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return [
    `Simulated ${r.simulatedHours} h of alerts from ${r.source}, ${r.from} → ${r.to}, in ${r.wallSeconds} s${rate}`,
    `Policy: ${r.config}; recovery model: ${r.recovery}`,
    ...(ignored ? [`Not acted on (as the webhook would not): ${ignored}`] : []),
  ].join('\n');
}

export function formatReport(r: SimulationReport): string {
  const kinds = REFUSAL_KINDS.map((k) => k.kind).join('/');
  const rows = [
    ['SERVICE', 'HOST', 'INCIDENTS', 'RESTARTS', `REFUSED ${kinds}`, 'ESCALATIONS', 'ALERT→RESTART p50/p95', 'HELD'],
  ];
  for (const s of [...r.services, r.total]) {
    rows.push([
      s.service,
      s.host,
      String(s.incidents),
      String(s.restarts),
      REFUSAL_KINDS.map((k) => s.refused[k.kind]).join('/'),
      escalationsText(s),
      `${secs(s.alertToRestart.p50)}/${secs(s.alertToRestart.p95)}`,
      secs(s.heldSeconds),
    ]);
  }
  return `${header(r)}\n\n${table(rows)}\n`;
}

/** Both policies side by side: every row that differs is marked `*` (bold on a terminal). */
export function formatComparison(a: SimulationReport, b: SimulationReport, opts: { color?: boolean } = {}): string {
  const diffs = compareReports(a, b);
  const differs = new Set(diffs.map((d) => `${d.service}\u0000${d.metric}`));
  const mark = (text: string) => (opts.color ? `\u001b[1;33m${text}\u001b[0m` : text);
  const rows = [['', 'METRIC', a.config, b.config]];
  const byName = new Map(b.services.map((s) => [rowName(s), s]));
  for (const x of [...a.services, a.total]) {
    const y = x.service === 'total' ? b.total : byName.get(rowName(x));
    const fy = new Map(y ? figures(y) : []);
    for (const [metric, va] of figures(x)) {
      const vb = fy.get(metric) ?? null;
      const d = differs.has(`${rowName(x)}\u0000${metric}`);
      // Figures that are nothing under both policies are left out (a flat table hides what matters).
      const nothing = (v: number | null) => v == null || v === 0;
      if (!d && nothing(va) && nothing(vb) && metric !== 'incidents' && metric !== 'restarts') continue;
      rows.push([d ? '*' : '', `${rowName(x)}: ${metric}`, String(va ?? '-'), String(vb ?? '-')]);
    }
  }
  const lines = table(rows)
    .split('\n')
    .map((l) => (l.startsWith('*') ? mark(l) : l));
  const summary = diffs.length
    ? diffs.map((d) => `  ${d.service}: ${d.metric} ${d.a ?? '-'} → ${d.b ?? '-'}`).join('\n')
    : '  none: both policies would have done the same';
  return `${header(a)}\nCompared with: ${b.config}\n\n${lines.join('\n')}\n\nDifferences (${diffs.length}):\n${summary}\n`;
}
