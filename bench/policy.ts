// 1. Pure policy: decideRestart and planAlerts throughput, in-process, no I/O.
import { DEFAULT_POLICY, HOUR_MS, decideRestart, type DecisionInput, type Mode } from '../src/policy/policy';
import { planAlerts } from '../src/client/alert-intake';
import {
  distinctAlertsPayload,
  fleet,
  fleetConfig,
  mixedStormAlerts,
  prng,
  singleAlertPayload,
  type MixedComposition,
} from './lib/fixtures';
import { measureThroughput, type RoundsOptions, type Spread, type ThroughputResult } from './lib/stats';
import type { IncomingAlert } from '../src/client/alert-intake';

export interface PolicyCase {
  name: string;
  /** Alerts per call (1 for decideRestart). */
  itemsPerOp: number;
  configuredServices?: number;
  opsPerSec: Spread;
  usPerOp: Spread;
  itemsPerSec: Spread;
  itersPerRound: number;
}

export interface PolicyResults {
  rounds: RoundsOptions;
  cases: PolicyCase[];
  stormComposition: MixedComposition;
  stormPlan: { signals: number; ignored: number; rejected: number; rejectedReason: string | null };
  decisionMix: Record<string, number>;
}

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);

/** 1,024 varied decision inputs: every mode, empty to over-budget restart histories, cooldowns, approvals, pauses. */
function decisionInputs(): DecisionInput[] {
  const rand = prng(7);
  const modes: Mode[] = ['auto', 'auto', 'auto', 'auto', 'approval', 'dry-run'];
  return Array.from({ length: 1024 }, () => {
    const restarts = Array.from({ length: Math.floor(rand() * 6) }, () => NOW - Math.floor(rand() * 2 * HOUR_MS));
    const lastAttemptAt = rand() < 0.3 ? null : NOW - Math.floor(rand() * 5 * 60_000);
    return {
      state: { restarts, lastAttemptAt, consecutiveFailures: Math.floor(rand() * 4) },
      policy: { ...DEFAULT_POLICY, mode: modes[Math.floor(rand() * modes.length)] },
      now: NOW,
      approved: rand() < 0.05,
      paused: rand() < 0.05,
    };
  });
}

function toCase(
  name: string,
  r: ThroughputResult,
  itemsPerOp: number,
  configuredServices: number | undefined,
): PolicyCase {
  const s = r.opsPerSec;
  return {
    name,
    itemsPerOp,
    configuredServices,
    opsPerSec: s,
    usPerOp: r.usPerOp,
    itemsPerSec: { median: s.median * itemsPerOp, min: s.min * itemsPerOp, max: s.max * itemsPerOp, n: s.n },
    itersPerRound: r.itersPerRound,
  };
}

export function runPolicyBench(log: (l: string) => void): PolicyResults {
  const rounds: RoundsOptions = { warmupMs: 400, rounds: 7, roundMs: 250 };
  const cases: PolicyCase[] = [];

  const inputs = decisionInputs();
  const decisionMix: Record<string, number> = {};
  for (const d of inputs) {
    const k = decideRestart(d).kind;
    decisionMix[k] = (decisionMix[k] ?? 0) + 1;
  }
  const kinds = ['restart', 'dry-run', 'paused', 'cooldown', 'exhausted', 'needs-approval'];
  const dec = measureThroughput((i) => kinds.indexOf(decideRestart(inputs[i & 1023]).kind), rounds);
  cases.push(toCase('decideRestart (1,024 varied inputs)', dec, 1, undefined));
  log(`  decideRestart done`);

  const hosts = ['node-a', 'node-b', 'node-c', 'node-d'];
  const big = fleet(5000, hosts);
  let storm: ReturnType<typeof mixedStormAlerts> | null = null;
  let stormPlan: PolicyResults['stormPlan'] | null = null;
  for (const n of [50, 200, 1000, 5000]) {
    const configured = big.slice(0, n);
    const config = fleetConfig({ services: configured });
    // The 30 services the storm names are spread evenly over the configured list (20 firing, 10 resolved).
    const even = Array.from({ length: 30 }, (_, i) => configured[Math.floor((i * n) / 30)]);
    const named = [...even.filter((_, i) => i % 3 !== 2), ...even.filter((_, i) => i % 3 === 2)];
    const st = mixedStormAlerts(named, 11);
    storm ??= st;
    const stormAlerts: readonly IncomingAlert[] = st.alerts;
    const plan = planAlerts(config, stormAlerts);
    stormPlan ??= {
      signals: plan.signals.length,
      ignored: plan.ignored.length,
      rejected: plan.rejected.length,
      rejectedReason: plan.rejected[0]?.reason ?? null,
    };
    const r = measureThroughput(() => planAlerts(config, stormAlerts).signals.length, rounds);
    cases.push(toCase(`planAlerts: 1,000-alert storm, ${n} services configured`, r, stormAlerts.length, n));
    log(`  planAlerts storm @${n} services done`);
  }

  const config200 = fleetConfig({ services: big.slice(0, 200) });
  const distinct = distinctAlertsPayload(big.slice(100, 200), 13).alerts as IncomingAlert[];
  const rd = measureThroughput(() => planAlerts(config200, distinct).signals.length, rounds);
  cases.push(toCase('planAlerts: 100 distinct services, 200 configured', rd, distinct.length, 200));
  const single = singleAlertPayload(big[150], 17).alerts as IncomingAlert[];
  const rs = measureThroughput(() => planAlerts(config200, single).signals.length, rounds);
  cases.push(toCase('planAlerts: 1 alert, 200 configured', rs, 1, 200));
  log(`  planAlerts distinct/single done`);

  return { rounds, cases, stormComposition: storm!.composition, stormPlan: stormPlan!, decisionMix };
}
