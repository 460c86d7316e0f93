// A picture of a simulation: one timeline per service, as a self-contained HTML page with inline
// SVG (no scripts, no external files). Lanes: the recorded alert firing, then per policy the
// validation windows, the time held (refused, awaiting a human), restarts and escalations.
import type { AuditRecord } from '../activities';
import { AUDIT_EVENTS } from '../workflows/definitions';
import type { SimulationResult } from './driver';
import type { Interval } from './history';
import { REFUSAL_KINDS } from './report';

const WIDTH = 1100;
const LABEL = 170;
const LANE = 18;
/** Services drawn at most: a page stays readable and bounded in size. */
export const MAX_TIMELINES = 200;

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

interface Marks {
  validating: Interval[];
  held: Interval[];
  restarts: number[];
  escalations: { at: number; event: string }[];
}

const HOLDS = new Set<string>([...REFUSAL_KINDS.flatMap((k) => k.decisions), 'await-approval', 'hold']);

/** Validation windows, holds, restarts and escalations of one service, from its audit records. */
export function marksOf(records: readonly AuditRecord[], end: number): Marks {
  const m: Marks = { validating: [], held: [], restarts: [], escalations: [] };
  let validating: number | null = null;
  let held: number | null = null;
  const stopValidating = (t: number) => {
    if (validating != null) m.validating.push({ start: validating, end: t });
    validating = null;
  };
  const stopHeld = (t: number) => {
    if (held != null) m.held.push({ start: held, end: t });
    held = null;
  };
  for (const r of records) {
    const t = Date.parse(r.time);
    if (r.event === AUDIT_EVENTS.incidentOpened) validating = t;
    else if (r.event === AUDIT_EVENTS.recheck || r.event === AUDIT_EVENTS.validationCancelled) stopValidating(t);
    else if ((r.event === AUDIT_EVENTS.decision && HOLDS.has(r.decision)) || r.event === AUDIT_EVENTS.held) held ??= t;
    else if (r.event === AUDIT_EVENTS.restart) {
      stopValidating(t);
      stopHeld(t);
      m.restarts.push(t);
    } else if (r.event === AUDIT_EVENTS.escalated) {
      m.escalations.push({ at: t, event: r.escalation ?? 'escalated' });
      if (r.escalation === 'ConsecutiveFailures') held ??= t;
    } else if (r.event === AUDIT_EVENTS.incidentClosed) {
      stopValidating(t);
      stopHeld(t);
    }
  }
  stopValidating(end);
  stopHeld(end);
  return m;
}

function svgFor(
  title: string,
  down: readonly Interval[],
  runs: { label: string; marks: Marks }[],
  from: number,
  to: number,
): string {
  const span = Math.max(1, to - from);
  const x = (t: number) => LABEL + ((Math.min(Math.max(t, from), to) - from) / span) * (WIDTH - LABEL - 10);
  const w = (i: Interval) => Math.max(1.5, x(Math.min(i.end, to)) - x(i.start));
  const tip = (text: string) => `<title>${esc(text)}</title>`;
  const iso = (t: number) => new Date(t).toISOString().replace('.000Z', 'Z');
  const parts: string[] = [];
  let y = 22;
  parts.push(`<text x="0" y="14" class="name">${esc(title)}</text>`);
  parts.push(`<text x="0" y="${y + 13}" class="lane">alert firing (recorded)</text>`);
  for (const d of down) {
    parts.push(
      `<rect x="${x(d.start)}" y="${y + 2}" width="${w(d)}" height="${LANE - 4}" class="firing">${tip(`firing ${iso(d.start)} → ${Number.isFinite(d.end) ? iso(d.end) : 'end'}`)}</rect>`,
    );
  }
  for (const run of runs) {
    y += LANE + 4;
    parts.push(`<text x="0" y="${y + 13}" class="lane">${esc(run.label)}</text>`);
    parts.push(`<line x1="${LABEL}" x2="${WIDTH - 10}" y1="${y + LANE / 2}" y2="${y + LANE / 2}" class="axis"/>`);
    for (const v of run.marks.validating) {
      parts.push(
        `<rect x="${x(v.start)}" y="${y + 4}" width="${w(v)}" height="${LANE - 8}" class="validating">${tip(`validating ${iso(v.start)} → ${iso(v.end)}`)}</rect>`,
      );
    }
    for (const h of run.marks.held) {
      parts.push(
        `<rect x="${x(h.start)}" y="${y + 4}" width="${w(h)}" height="${LANE - 8}" class="held">${tip(`held (no restart) ${iso(h.start)} → ${iso(h.end)}`)}</rect>`,
      );
    }
    for (const t of run.marks.restarts) {
      parts.push(
        `<circle cx="${x(t)}" cy="${y + LANE / 2}" r="4" class="restart">${tip(`restart ${iso(t)}`)}</circle>`,
      );
    }
    for (const e of run.marks.escalations) {
      const cx = x(e.at);
      parts.push(
        `<path d="M${cx - 5},${y + LANE - 1} L${cx + 5},${y + LANE - 1} L${cx},${y + 1} Z" class="escalation">${tip(`${e.event} ${iso(e.at)}`)}</path>`,
      );
    }
  }
  const height = y + LANE + 8;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="${esc(title)}">${parts.join('')}</svg>`;
}

function axisSvg(from: number, to: number): string {
  const span = Math.max(1, to - from);
  const ticks: string[] = [];
  const n = 8;
  for (let i = 0; i <= n; i++) {
    const t = from + (span * i) / n;
    const x = LABEL + (i / n) * (WIDTH - LABEL - 10);
    const label = new Date(t).toISOString().slice(5, 16).replace('T', ' ');
    ticks.push(
      `<line x1="${x}" x2="${x}" y1="0" y2="6" class="axis"/><text x="${x}" y="18" class="tick" text-anchor="middle">${label}</text>`,
    );
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="24" viewBox="0 0 ${WIDTH} 24">${ticks.join('')}</svg>`;
}

const STYLE = `body{font:14px system-ui,sans-serif;margin:24px;color:#222}
svg{display:block;margin:4px 0 10px}.name{font-weight:600;font-size:13px}.lane,.tick{font-size:11px;fill:#555}
.firing{fill:#e4572e}.validating{fill:#f3a712}.held{fill:#9aa5b1}.restart{fill:#2e86de;stroke:#fff}
.escalation{fill:#8e1b1b}.axis{stroke:#ccc}.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
pre{background:#f6f8fa;padding:12px;overflow:auto}`;

/** The HTML page: a legend, a time axis, one timeline per service, and the text report. */
export function timelineHtml(runs: { label: string; result: SimulationResult }[], reportText: string): string {
  const first = runs[0].result;
  const from = first.from;
  const to = Math.max(...runs.map((r) => r.result.to));
  const ids = [...first.planned.services.keys()].sort().slice(0, MAX_TIMELINES);
  const byRun = runs.map((r) => {
    const m = new Map<string, AuditRecord[]>();
    for (const rec of r.result.records) {
      const list = m.get(rec.workflowId) ?? [];
      list.push(rec);
      m.set(rec.workflowId, list);
    }
    return m;
  });
  const svgs = ids.map((id) => {
    const { host, service } = first.planned.services.get(id)!;
    return svgFor(
      `${service} on ${host}`,
      first.planned.down.get(id) ?? [],
      runs.map((r, i) => ({ label: r.label, marks: marksOf(byRun[i].get(id) ?? [], r.result.to) })),
      from,
      to,
    );
  });
  const more = first.planned.services.size - ids.length;
  const legend = [
    ['firing', 'alert firing (recorded)'],
    ['validating', 'validation window'],
    ['held', 'held: restart refused, awaiting a human'],
    ['restart', 'restart (simulated)'],
    ['escalation', 'escalation'],
  ]
    .map(([c, t]) => `<span><i class="${c}"></i>${esc(t)}</span>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>selfheal simulate: ${esc(runs.map((r) => r.label).join(' vs '))}</title>
<style>${STYLE}
.legend .firing{background:#e4572e}.legend .validating{background:#f3a712}.legend .held{background:#9aa5b1}.legend .restart{background:#2e86de;border-radius:6px}.legend .escalation{background:#8e1b1b}</style></head>
<body><h1>selfheal simulate</h1>
<p class="legend">${legend}</p>
${axisSvg(from, to)}
${svgs.join('\n')}
${more > 0 ? `<p>${more} more services not drawn (limit ${MAX_TIMELINES}).</p>` : ''}
<h2>Report</h2><pre>${esc(reportText)}</pre>
</body></html>
`;
}
