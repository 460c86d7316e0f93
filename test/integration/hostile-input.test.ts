// Hostile input, generated rather than hand-picked (fast-check): the Alertmanager webhook through the
// real app (app.inject) and `selfheal poll` intake (pollOnce through the real PrometheusClient, and
// the pure planAlerts), against a real Temporal dev server with a real control worker.
//
// For every generated payload: no crash, no 5xx while Temporal is up, every alert not acted on comes
// with a reason, and nothing is signalled for a service outside the configured allowlist. The last
// point is checked at the source twice: a client interceptor records every signal the app and poll
// send, and the workflows that exist in Temporal afterwards are listed.
//
// Seed and size are printed first; FC_SEED=<n> FC_NUM_RUNS=<n> reproduce a run (RELIABILITY.md).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, type WorkflowClientInterceptor } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { PrometheusClient, type PromAlert } from '../../src/activities/prometheus';
import { buildApp } from '../../src/api/app';
import { pollOnce } from '../../src/cli/poll';
import type { Config } from '../../src/config/config';
import { createMetrics } from '../../src/metrics/metrics';
import { planAlerts, type IncomingAlert } from '../../src/client/alert-intake';
import { WORKFLOW_TYPE, workflowIdFor } from '../../src/workflows/definitions';
import { FLEET_WORKFLOW_ID } from '../../src/workflows/fleet-definitions';
import { startAlertsServer, type AlertsServer } from '../helpers/alerts-server';
import { tempDir, testConfig } from '../helpers/config';
import { FakeManager } from '../helpers/fake-manager';
import {
  actableTarget,
  alert,
  alerts as alertList,
  fcSettings,
  labelValue,
  payload,
  schemaValid,
  universeOf,
  type Universe,
  type WireAlert,
} from '../helpers/hostile-input';
import { devServerEnv, startWorkers, type RunningWorkers } from '../helpers/temporal';

// FC_NUM_RUNS is the number of webhook payloads (and of planAlerts lists); poll and the large
// payloads scale from it.
const FC = fcSettings(10_000);
const RUNS = {
  webhook: FC.numRuns,
  large: Math.max(1, Math.ceil(FC.numRuns / 500)),
  plan: FC.numRuns,
  poll: Math.max(1, Math.ceil(FC.numRuns / 40)),
};
console.log(
  `hostile input: fast-check seed ${FC.seed}; ${RUNS.webhook} webhook payloads, ${RUNS.large} large ones, ` +
    `${RUNS.plan} planAlerts lists, ${RUNS.poll} poll answers. Reproduce: ` +
    `FC_SEED=${FC.seed} FC_NUM_RUNS=${FC.numRuns} node scripts/test.mjs test/integration/hostile-input.test.ts`,
);
/** Each property's own seed, derived from the file's. */
const seedOf = (i: number) => (FC.seed + i) % 0x7fffffff;
/** An upper bound on one property: a hang fails, it does not stall the suite. */
const LIMIT = { timeout: 300_000 };

const TOKEN = 'webhook-token-0123456789';
const dir = tempDir();
let env: TestWorkflowEnvironment;
let workers: RunningWorkers;
let config: Config;
let u: Universe;
let app: FastifyInstance;
let client: Client;
let alertsServer: AlertsServer;
const fake = new FakeManager();
/** Every signal sent to Temporal by the app and by poll, recorded by a client interceptor. */
const signalled: { workflowId: string; signal: string }[] = [];

before(async () => {
  env = await devServerEnv();
  alertsServer = await startAlertsServer();
  config = testConfig(
    `
temporal: { address: "${env.address}", dataDir: ${dir} }
api: { token: ${TOKEN}, adminToken: admin-token-0123456789abc }
prometheus: { url: "${alertsServer.url}" }
audit: { file: ${join(dir, 'audit.log')} }
# Nothing is ever restarted here: the validation window outlasts the test.
policy: { validationWindow: 6h }
services:
  - { name: jira-worker.service, host: homelab }
  - { name: crypto-agent@BTC_USDT.service, host: homelab }
  - { name: crypto-agent@ETH_USDT.service, host: homelab }
  - { name: twin.service, host: web1 }
  - { name: twin.service, host: web-2 }
  - { name: a.service, host: 10.0.0.5 }
`,
    dir,
  );
  u = universeOf(config);
  // The control worker answers the state queries poll makes; no host worker: nothing may restart.
  workers = await startWorkers(env, config, { hosts: [], managers: () => fake });
  const recorder: WorkflowClientInterceptor = {
    async signal(input, next) {
      signalled.push({ workflowId: input.workflowExecution.workflowId, signal: input.signalName });
      return next(input);
    },
    async signalWithStart(input, next) {
      signalled.push({ workflowId: input.options.workflowId, signal: input.signalName });
      return next(input);
    },
  };
  client = new Client({ connection: env.connection, namespace: 'default', interceptors: { workflow: [recorder] } });
  app = await buildApp({ config, client, metrics: createMetrics() });
});

after(async () => {
  await app?.close();
  await workers?.shutdown();
  await env?.teardown();
  await alertsServer?.close();
});

const allowed = () => new Set(config.services.map((s) => workflowIdFor(s.host, s.name)));
const key = (t: { host: string; service: string }) => workflowIdFor(t.host, t.service);
const trigger = (p: { body: unknown; raw?: Buffer }) =>
  app.inject({
    method: 'POST',
    url: '/selfheal/trigger',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    payload: p.raw ?? JSON.stringify(p.body),
  });

interface WebhookAnswer {
  received: number;
  accepted: { host: string; service: string; workflowId: string }[];
  ignored: { reason: unknown }[];
  rejected: { reason: unknown }[];
}

/** The checks every webhook answer must pass; returns a short label for the tally. */
function checkAnswer(p: { alerts: WireAlert[] | null }, res: { statusCode: number; body: string }): string {
  const code = res.statusCode;
  assert.ok(code === 200 || code === 400 || code === 413, `status ${code}: ${res.body.slice(0, 300)}`);
  const body = JSON.parse(res.body) as Record<string, unknown>;
  if (code !== 200) {
    assert.equal(typeof body.message, 'string');
    assert.ok((body.message as string).length > 0, 'a refusal says why');
    const why = (body.message as string)
      .replace(/\d+/g, 'N')
      .replace(/(labels|annotations)\/.*? must/, '$1/<key> must');
    return `${code} ${why.slice(0, 70)}`;
  }
  assert.ok(p.alerts, '200 for a payload the generator meant to be malformed');
  const a = body as unknown as WebhookAnswer;
  assert.equal(a.received, p.alerts.length);
  for (const x of [...a.ignored, ...a.rejected]) {
    assert.equal(typeof x.reason, 'string');
    assert.ok((x.reason as string).length > 0, 'every alert not acted on has a reason');
  }
  const actable = p.alerts.map((x) => actableTarget(config, x)).filter((t) => t !== null);
  assert.equal(a.ignored.length + a.rejected.length, p.alerts.length - actable.length, 'every alert accounted for');
  const ids = allowed();
  for (const acc of a.accepted) {
    assert.ok(ids.has(acc.workflowId), `accepted outside the allowlist: ${acc.workflowId}`);
    assert.equal(acc.workflowId, key(acc));
  }
  assert.deepEqual(new Set(a.accepted.map(key)), new Set(actable.map(key)), 'acts on exactly the actable services');
  return actable.length ? '200 acted on' : '200 nothing to act on';
}

function assertOnlyAllowedSignals(from: number): void {
  const ids = allowed();
  assert.deepEqual(
    signalled.slice(from).filter((s) => !ids.has(s.workflowId)),
    [],
    'signals outside the allowlist',
  );
}

const count = (counts: Map<string, number>, label: string) => counts.set(label, (counts.get(label) ?? 0) + 1);
const tally = (counts: Map<string, number>) =>
  [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n} ${k}`)
    .join('; ');

describe('hostile input, generated (fast-check)', () => {
  it(
    'the webhook answers every generated payload with 200, 400 or 413 and a reason, never acting outside the allowlist',
    LIMIT,
    async (t) => {
      const seed = seedOf(0);
      t.diagnostic(`webhook: seed ${seed}, ${RUNS.webhook} payloads`);
      const counts = new Map<string, number>();
      const started = Date.now();
      await fc.assert(
        fc.asyncProperty(payload(u), async (p) => {
          const from = signalled.length;
          count(counts, checkAnswer(p, await trigger(p)));
          assertOnlyAllowedSignals(from);
        }),
        { seed, numRuns: RUNS.webhook },
      );
      t.diagnostic(`webhook: ${RUNS.webhook} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${tally(counts)}`);
    },
  );

  it('thousands of alerts in one payload', LIMIT, async (t) => {
    const seed = seedOf(1);
    t.diagnostic(`webhook, large: seed ${seed}, ${RUNS.large} payloads of 1,000-3,000 alerts`);
    // Short values, so most stay under api.bodyLimit (1 MiB) and get planned; the rest must be 413.
    const big = fc.tuple(
      fc.array(
        alert(u).map((a) => schemaValid(a, 48)),
        { minLength: 60, maxLength: 60 },
      ),
      fc.integer({ min: 1000, max: 3000 }),
    );
    const counts = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(big, async ([sample, n]) => {
        // Cycling a generated sample keeps generation cheap; duplicates are part of the point.
        const alerts = Array.from({ length: n }, (_, i) => sample[i % sample.length]);
        const p = { body: { version: '4', status: 'firing', alerts }, alerts };
        const from = signalled.length;
        count(counts, checkAnswer(p, await trigger(p)));
        assertOnlyAllowedSignals(from);
      }),
      { seed, numRuns: RUNS.large },
    );
    t.diagnostic(`webhook, large: ${tally(counts)}`);
  });

  it(
    'planAlerts (poll and webhook intake, pure) accounts for every alert and plans only allowlisted signals',
    LIMIT,
    (t) => {
      const seed = seedOf(2);
      t.diagnostic(`planAlerts: seed ${seed}, ${RUNS.plan} alert lists`);
      const ids = allowed();
      const statusOk = (a: WireAlert): a is WireAlert & IncomingAlert =>
        a.status === 'firing' || a.status === 'resolved';
      fc.assert(
        fc.property(alertList(u, 40), (generated) => {
          const list = generated.filter(statusOk);
          const plan = planAlerts(config, list);
          const actable = list.map((a) => actableTarget(config, a)).filter((x) => x !== null);
          assert.equal(plan.ignored.length + plan.rejected.length, list.length - actable.length);
          for (const x of [...plan.ignored, ...plan.rejected]) assert.ok(x.reason.length > 0);
          for (const s of plan.signals) {
            assert.ok(ids.has(s.workflowId), s.workflowId);
            assert.equal(s.workflowId, key(s));
          }
          assert.deepEqual(new Set(plan.signals.map(key)), new Set(actable.map(key)));
        }),
        { seed, numRuns: RUNS.plan },
      );
    },
  );

  it(
    'selfheal poll feeds or refuses every generated Prometheus answer with a reason, never outside the allowlist',
    LIMIT,
    async (t) => {
      const seed = seedOf(3);
      t.diagnostic(`poll: seed ${seed}, ${RUNS.poll} Prometheus answers`);
      const prometheus = new PrometheusClient(alertsServer.url, 5_000);
      // Prometheus' own shape, with hostile labels, plus shapes only a broken proxy would send.
      const promAlert = fc.record({
        labels: fc.oneof({ weight: 20, arbitrary: alert(u).map((a) => a.labels as unknown) }, fc.jsonValue()),
        annotations: fc.oneof(
          { weight: 20, arbitrary: fc.dictionary(fc.constantFrom('summary', 'description'), labelValue()) },
          fc.jsonValue(),
        ),
        state: fc.oneof({ weight: 10, arbitrary: fc.constantFrom('firing', 'pending', 'inactive') }, fc.jsonValue()),
        activeAt: fc.oneof(
          fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
          fc.jsonValue(),
        ),
      });
      const answer = fc.oneof(
        { weight: 20, arbitrary: fc.array(promAlert, { maxLength: 20 }).map((a) => ({ alerts: a as unknown[] })) },
        { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((raw) => ({ raw: JSON.stringify(raw) ?? 'null' })) },
        {
          weight: 1,
          arbitrary: fc
            .jsonValue({ maxDepth: 2 })
            .map((data) => ({ raw: JSON.stringify({ status: 'success', data }) })),
        },
        { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map((raw) => ({ raw })) },
      );
      const counts = new Map<string, number>();
      await fc.assert(
        fc.asyncProperty(answer, async (a) => {
          alertsServer.set('alerts' in a ? (a.alerts as PromAlert[]) : a.raw);
          const from = signalled.length;
          try {
            const r = await pollOnce(client, config, { prometheus });
            assert.ok(
              'alerts' in a || Array.isArray((JSON.parse(a.raw) as { data?: { alerts?: unknown } }).data?.alerts),
            );
            const alerts =
              'alerts' in a ? a.alerts : (JSON.parse(a.raw) as { data: { alerts: unknown[] } }).data.alerts;
            const firing = alerts.filter(
              (x): x is { labels?: unknown } =>
                typeof x === 'object' && x !== null && (x as { state?: unknown }).state === 'firing',
            );
            assert.equal(r.firingAlerts, firing.length);
            for (const x of r.notActedOn) assert.ok(typeof x.reason === 'string' && x.reason.length > 0);
            const actable = firing.filter((x) => actableTarget(config, x));
            assert.equal(r.notActedOn.length, firing.length - actable.length, 'every firing alert accounted for');
            assert.equal(r.ignored + r.rejected, r.notActedOn.length);
            const ids = allowed();
            for (const s of r.signalled) assert.ok(ids.has(s.workflowId), s.workflowId);
            count(counts, r.signalled.length ? 'fed' : r.firingAlerts ? 'nothing new to send' : 'nothing firing');
          } catch (err) {
            // Refused: only an answer that is not a Prometheus alerts list, and it says so.
            if (err instanceof assert.AssertionError) throw err;
            assert.ok(!('alerts' in a), `a well-formed answer was refused: ${(err as Error).message}`);
            assert.match((err as Error).message, /^Prometheus /, (err as Error).stack);
            count(counts, 'refused (not an alerts list)');
          }
          assertOnlyAllowedSignals(from);
        }),
        { seed, numRuns: RUNS.poll },
      );
      t.diagnostic(`poll: ${tally(counts)}`);
    },
  );

  it('afterwards, at the source: only allowlisted workflows exist and only they were signalled; the API still answers', async (t) => {
    const ids = allowed();
    const all: string[] = [];
    // Service workflows only: the fleet coordinator (one per namespace, no service) is the product's own.
    for await (const wf of env.client.workflow.list()) if (wf.workflowId !== FLEET_WORKFLOW_ID) all.push(wf.workflowId);
    assert.deepEqual(
      all.filter((id) => !ids.has(id)),
      [],
      'workflows outside the allowlist exist',
    );
    const ours: string[] = [];
    for await (const wf of env.client.workflow.list({ query: `WorkflowType = '${WORKFLOW_TYPE}'` }))
      ours.push(wf.workflowId);
    assert.ok(ours.length > 0, 'the properties did reach Temporal');
    assert.deepEqual(
      signalled.filter((s) => !ids.has(s.workflowId)),
      [],
    );
    t.diagnostic(
      `${signalled.length} signals sent, to ${new Set(signalled.map((s) => s.workflowId)).size} workflows; ` +
        `${all.length} workflow runs in Temporal, all allowlisted`,
    );
    assert.equal(fake.calls.filter((c) => c.op === 'restart').length, 0, 'nothing was restarted');
    assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  });
});
