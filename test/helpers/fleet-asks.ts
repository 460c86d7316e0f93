// N services on N hosts, each asking the fleet coordinator for a restart slot at once: the setup of
// test/workflows/fleet-answers.test.ts and of the history it replays (test/histories/record-fleet-answers.ts).
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { reportToFleet } from '../../src/activities/fleet';
import type { Config } from '../../src/config/config';
import type { FleetReport } from '../../src/workflows/fleet-definitions';
import { tempDir, testConfig } from './config';

/** A config with services s<i>.service on hosts h<i>, no breaker, slots for all of them. */
export function askersConfig(n: number): Config {
  const dir = tempDir();
  const services = Array.from({ length: n }, (_, i) => `  - { name: s${i}.service, host: h${i} }`).join('\n');
  return testConfig(
    `
temporal: { dataDir: ${dir} }
audit: { file: ${join(dir, 'audit.log')} }
fleet: { breaker: { enabled: false }, maxRestartsInFlight: 100, maxRestartsInFlightPerHost: 10 }
services:
${services}
`,
    dir,
  );
}

/** Each of the n services asks for a restart slot (first ask of incident inc-<i>). */
export async function askAll(client: Client, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const report: FleetReport = {
      kind: 'request',
      host: `h${i}`,
      service: `s${i}.service`,
      workflowId: `selfheal/h${i}/s${i}.service`,
      incidentId: `inc-${i}`,
      ask: 1,
      approved: false,
      dependsOn: [],
    };
    await reportToFleet(client, report);
  }
}
