// Profiling aid: one run of the simulate bench's week (50 services / 5 hosts), with its wall time,
// the report's totals and the 1-minute load average before and after.
//   npx tsx bench/simulate-once.ts [services] [shards|-] [processes|-] [auto|real|skip]
import { loadavg } from 'node:os';
import { simulate } from '../src/simulate/driver';
import { buildReport } from '../src/simulate/report';
import { benchWeek } from './lib/alert-week';

async function main() {
  const n = Number(process.argv[2] ?? 50);
  const shards = process.argv[3] && process.argv[3] !== '-' ? Number(process.argv[3]) : undefined;
  const processes = process.argv[4] === 'processes';
  const coordinator = (process.argv[5] ?? 'auto') as 'auto' | 'real' | 'skip';
  const { config, history } = benchWeek(n);
  const load0 = loadavg()[0];
  let last = 0;
  const t0 = performance.now();
  const result = await simulate({
    config,
    history,
    shards,
    processes,
    coordinator,
    onProgress: (d, total) => {
      const now = performance.now();
      if (now - last > 5000) {
        last = now;
        process.stderr.write(`  ${((now - t0) / 1000).toFixed(0)} s: ${((100 * d) / total).toFixed(0)}%\n`);
      }
    },
  });
  const r = buildReport(result, history.source);
  const t = r.total;
  console.log(
    JSON.stringify({
      services: n,
      deliveries: history.deliveries.length,
      wallS: +(result.wallMs / 1000).toFixed(1),
      hours: r.simulatedHours,
      hPerS: +(r.simulatedHours / (result.wallMs / 1000)).toFixed(2),
      incidents: t.incidents,
      restarts: t.restarts,
      records: result.records.length,
      load: [load0, loadavg()[0]].map((x) => +x.toFixed(2)),
      shards: result.shards,
      processes,
      coordinator: result.coordinator,
      total: t,
    }),
  );
}
void main();
