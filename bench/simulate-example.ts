// Writes the checked-in example of README "Tune your policy": a generated week of alerts for the
// homelab of examples/selfheal.yaml (examples/simulate/alerts.jsonl, in the format
// api.recordDeliveries writes), then runs the real `selfheal simulate --compare` on it and keeps
// its output (report.txt) and timeline (timeline.html).
//
//   npx tsx bench/simulate-example.ts
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/config';
import { alertWeek } from './lib/alert-week';

const ROOT = join(__dirname, '..');
const DIR = join(ROOT, 'examples', 'simulate');
const config = loadConfig(join(ROOT, 'examples', 'selfheal.yaml'));
const services = config.services.map((s) => ({ name: s.name, host: s.host }));
const week = alertWeek({ services, start: Date.parse('2026-11-02T00:00:00Z'), perDay: 1.5, seed: 7 });
const lines = week.deliveries.map((d) =>
  JSON.stringify({
    receivedAt: new Date(d.at).toISOString(),
    body: { version: '4', status: d.alerts[0].status, receiver: 'selfheal', alerts: d.alerts },
  }),
);
writeFileSync(join(DIR, 'alerts.jsonl'), `${lines.join('\n')}\n`);
const out = execFileSync(
  process.execPath,
  [
    join(ROOT, 'bin', 'selfheal.js'),
    'simulate',
    '--alerts',
    'examples/simulate/alerts.jsonl',
    '--config',
    'examples/selfheal.yaml',
    '--compare',
    'examples/simulate/candidate.yaml',
    '--out',
    'examples/simulate/timeline.html',
  ],
  { cwd: ROOT, encoding: 'utf8', env: { ...process.env, SELFHEAL_FROM_SOURCE: '1' } },
);
writeFileSync(join(DIR, 'report.txt'), out);
process.stdout.write(out);
