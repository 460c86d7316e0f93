// `npm run demo`: the end-to-end harness, for a person. It starts everything for real on this
// machine (a private systemd user manager with six crypto agents, Prometheus with the shipped rules,
// Alertmanager with the shipped routing, and `selfheal start`), stops crypto-agent@BTC_USDT.service,
// and narrates what happens as it happens, from the real state of each part. Then it keeps
// running, still narrating, so you can look around and try things, until Ctrl-C, which stops
// everything. A second Ctrl-C kills everything at once.
import type { ServiceStateView } from '../../src/workflows/definitions';
import { Harness, type Sample } from './harness';

const AGENTS = ['BTC_USDT', 'ETH_USDT', 'XRP_USDT', 'SOL_USDT', 'DOGE_USDT', 'ADA_USDT'];
const VICTIM = 'BTC_USDT';
const TICK_MS = 500;

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);

let t0 = Date.now();
function say(line: string): void {
  const t = ((Date.now() - t0) / 1000).toFixed(1);
  process.stdout.write(`${dim(`[+${t.padStart(5)}s]`)} ${line}\n`);
}

let harness: Harness | null = null;
let stopping: Promise<void> | null = null;

function shutdown(code: number): void {
  if (stopping) return;
  process.stdout.write('\nStopping everything (press Ctrl-C again to kill it all at once) ...\n');
  stopping = (harness?.stop() ?? Promise.resolve()).then(
    () => {
      process.stdout.write('Everything is stopped and its files removed.\n');
      process.exit(code);
    },
    (err: Error) => {
      process.stderr.write(`while stopping: ${err.message}\n`);
      harness?.killNow();
      process.exit(1);
    },
  );
}

function onSignal(): void {
  if (stopping) {
    process.stdout.write('Killing everything now.\n');
    // process.exit runs the harness's exit hook, which SIGKILLs every process it started.
    process.exit(130);
  }
  shutdown(0);
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

interface Unit {
  active: string;
  pid: number;
}

/** One `systemctl show` for all units. */
async function units(h: Harness): Promise<Map<string, Unit>> {
  const out = await h.systemctl(
    'show',
    '--property=Id,ActiveState,SubState,MainPID',
    '--',
    ...AGENTS.map((i) => h.service(i)),
  );
  const map = new Map<string, Unit>();
  for (const block of out.trim().split(/\n\s*\n/)) {
    const p = Object.fromEntries(
      block.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    map.set(p.Id, { active: `${p.ActiveState}/${p.SubState}`, pid: Number(p.MainPID) });
  }
  return map;
}

const PHASE_TEXT: Record<string, string> = {
  validating: 'validating: waits out the validation window; a resolved alert now would cancel the restart',
  checking: 're-checking the unit on its host (and asking Prometheus whether the alert still fires)',
  restarting: 'restarting: `systemctl --user restart` on the host worker',
  verifying: 'verifying: the unit must be active, as a new process, and stay up',
  cooldown: 'cooldown: no restart within the cooldown of the last attempt',
  exhausted: 'exhausted: restart budget used up, escalated; waiting for the budget or a human',
  escalated: 'escalated to a human: waiting for `selfheal approve` or `selfheal skip`',
  'awaiting-approval': 'waiting for a human to approve the restart',
  paused: 'paused',
  idle: 'idle: watching',
};

function describePhase(s: ServiceStateView): string {
  let text = PHASE_TEXT[s.phase] ?? s.phase;
  if (s.phase === 'validating' && s.incident?.waitUntil) {
    text += ` (until ${new Date(s.incident.waitUntil).toLocaleTimeString()})`;
  }
  if (s.phase === 'idle' && s.recentAttempts.length) {
    const a = s.recentAttempts[s.recentAttempts.length - 1];
    text += `; last attempt: ${a.result} (${a.reason}${a.detail ? `: ${a.detail}` : ''})`;
  }
  return text;
}

function counter(samples: Sample[], name: string, labels: Record<string, string>): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

/** Narrates every change it sees, across all agents, until Ctrl-C. */
async function narrate(h: Harness, victimPidBefore: number, unitSeen: Map<string, Unit>): Promise<never> {
  const alertState = new Map<string, string>();
  const phase = new Map<string, string>();
  let auditSeen = 0;
  const received = { firing: -1, resolved: -1 };
  let escalationsSeen = 0;
  let adminSeen = 0;
  let told = false;
  for (;;) {
    if (stopping) await new Promise(() => undefined);
    try {
      // Prometheus: the selfheal copy of ServiceStalled, and the escalation alerts.
      const alerts = await h.promAlerts();
      const now = new Map<string, { state: string; reason: string }>();
      for (const a of alerts) {
        if (a.labels.alertname === 'ServiceStalled' && a.labels.audience !== 'selfheal') continue;
        if (!['ServiceStalled', 'SelfHealingExhausted', 'ConsecutiveFailures'].includes(a.labels.alertname)) continue;
        now.set(`${a.labels.alertname} ${a.labels.service}`, { state: a.state, reason: a.labels.reason ?? '' });
      }
      for (const [key, v] of now) {
        if (alertState.get(key) === v.state) continue;
        alertState.set(key, v.state);
        const [name, service] = key.split(' ');
        const why = v.reason ? ` (reason ${v.reason})` : '';
        say(
          v.state === 'pending'
            ? `Prometheus: ${bold(name)} for ${service}${why} is ${bold('pending')}; it must hold for 30s (the rule's \`for\`)`
            : `Prometheus: ${bold(name)} for ${service}${why} is ${bold('FIRING')}; sent to Alertmanager`,
        );
      }
      for (const key of [...alertState.keys()]) {
        if (now.has(key)) continue;
        alertState.delete(key);
        const [name, service] = key.split(' ');
        say(`Prometheus: ${name} for ${service} ${bold('resolved')}`);
      }

      // selfheal's webhook: what Alertmanager delivered.
      const m = await h.selfhealMetrics();
      for (const status of ['firing', 'resolved'] as const) {
        const n = counter(m, 'selfhealing_alerts_received_total', { status });
        if (received[status] >= 0 && n > received[status]) {
          say(`selfheal: Alertmanager's webhook delivered ${n - received[status]} ${bold(status)} alert(s)`);
        }
        received[status] = n;
      }

      // The workflows: their `state` query, and every decision as the audit log records it (read
      // after the queries, so it holds the decisions behind the phases just seen).
      const states: [string, ServiceStateView][] = [];
      for (const i of AGENTS) {
        const s = await h.state(i);
        if (s) states.push([i, s]);
      }
      const audit = h.audit();
      for (const [i] of states) {
        if (!phase.has(i)) say(`Temporal: workflow ${bold(h.workflowId(i))} started (signal-with-start)`);
      }
      for (const a of audit.slice(auditSeen)) {
        say(dim(`audit: ${a.service} ${a.event} → ${a.decision}: ${a.reason}`));
      }
      auditSeen = audit.length;
      for (const [i, s] of states) {
        if (phase.get(i) === s.phase) continue;
        if (s.phase === 'verifying' && phase.get(i) !== 'restarting') {
          // `restarting` lasts only as long as `systemctl restart`: often too short to be seen by a
          // query. The workflow always passes through it, and its audit line says why.
          const r = audit.filter((a) => a.service === h.service(i) && a.event === 'restart').pop();
          say(
            `workflow ${h.service(i)}: phase ${bold('restarting')}: ${PHASE_TEXT.restarting}${r ? ` (${r.reason})` : ''}`,
          );
        }
        phase.set(i, s.phase);
        say(`workflow ${h.service(i)}: phase ${bold(s.phase)}: ${describePhase(s)}`);
      }

      // systemd.
      for (const [id, u] of await units(h)) {
        const was = unitSeen.get(id);
        unitSeen.set(id, u);
        if (!was || (was.active === u.active && was.pid === u.pid)) continue;
        const pid = was.pid !== u.pid && u.pid ? ` (pid ${was.pid || '-'} → ${bold(String(u.pid))})` : '';
        say(`systemd: ${id} is ${bold(u.active)}${pid}`);
      }

      // Escalations delivered by selfheal, and pages from Alertmanager to the admin receiver.
      for (const e of h.sink.events().slice(escalationsSeen)) {
        say(`escalation webhook: ${bold(String(e.event))} for ${e.service}: ${String(e.message)}`);
      }
      escalationsSeen = h.sink.received.length;
      for (const r of h.adminSink.received.slice(adminSeen)) {
        const body = r.body as { status?: string; alerts?: { labels: Record<string, string> }[] };
        const names = (body.alerts ?? []).map((a) => `${a.labels.alertname} ${a.labels.service ?? ''}`.trim());
        say(`Alertmanager paged the admin (${body.status}): ${names.join(', ')}`);
      }
      adminSeen = h.adminSink.received.length;

      const victim = unitSeen.get(h.service(VICTIM));
      if (
        !told &&
        phase.get(VICTIM) === 'idle' &&
        victim?.active.startsWith('active') &&
        victim.pid !== victimPidBefore
      ) {
        told = true;
        say(
          bold(
            `${h.service(VICTIM)} is back: restarted by selfheal as pid ${victim.pid} (was ${victimPidBefore}), verified.`,
          ),
        );
        afterwards(h);
      }
    } catch (err) {
      if (!stopping) say(dim(`(could not read some state: ${(err as Error).message.split('\n')[0]})`));
    }
    await new Promise((r) => setTimeout(r, TICK_MS));
  }
}

function afterwards(h: Harness): void {
  const sh = `npx selfheal`;
  const cfg = `--config ${h.configFile}`;
  const env = `XDG_RUNTIME_DIR=${h.systemd?.runtimeDir}`;
  process.stdout.write(
    [
      '',
      bold('Look around (everything stays up until Ctrl-C):'),
      `  Temporal UI      ${h.workflowUrl(VICTIM)}`,
      `                   the event history: alertFiring signal, timers, restartService/verifyService on selfheal-host-${h.host}`,
      `                   Query tab: "state";  list filter: SelfhealStatus = 'HEALING'`,
      `  Prometheus       ${h.promUrl}/alerts   ${h.promUrl}/graph?g0.expr=selfhealing_restarts_total`,
      `  Alertmanager     ${h.amUrl}`,
      `  selfheal API     ${h.apiUrl}/services (Authorization: Bearer ${h.adminToken})`,
      `  audit log        ${h.auditFile}`,
      '',
      bold('Try:'),
      `  ${sh} status ${cfg}`,
      `  curl -X POST ${h.agentUrl('ETH_USDT')}/stall        # ETH stays up but stops making progress`,
      `  ${env} systemctl --user stop ${h.service('SOL_USDT')}`,
      `  ${sh} pause ${h.service('DOGE_USDT')} --for 10m ${cfg}`,
      '',
      'Press Ctrl-C to stop everything.',
      '',
    ].join('\n'),
  );
}

async function main(): Promise<void> {
  process.stdout.write(bold('selfheal demo: everything real, on this machine.\n'));
  process.stdout.write(
    'Starting a systemd user manager, six crypto agents, selfheal, Prometheus and Alertmanager ...\n',
  );
  const h = await Harness.start({
    agents: AGENTS,
    signalHandlers: false,
    log: (line) => say(dim(line)),
  });
  harness = h;
  if (stopping) return;
  process.stdout.write(`\n${h.banner()}\n\n`);
  process.stdout.write(`${bold('Temporal UI')}       ${h.uiUrl}/namespaces/default/workflows\n`);
  process.stdout.write(`${bold('This workflow')}     ${h.workflowUrl(VICTIM)}\n`);
  process.stdout.write(`${bold('Prometheus')}        ${h.promUrl}/alerts\n`);
  process.stdout.write(`${bold('Alertmanager')}      ${h.amUrl}\n`);
  process.stdout.write(
    dim(
      `Windows are shortened for the demo: validation 5s, cooldown 5s, scrape and evaluation every 1s; the rule's 30s \`for\` is as shipped.\n\n`,
    ),
  );

  const before = await units(h);
  const victimPid = before.get(h.service(VICTIM))?.pid ?? 0;
  t0 = Date.now();
  say(`${bold(`systemctl --user stop ${h.service(VICTIM)}`)} (it was pid ${victimPid})`);
  await h.systemctl('stop', '--', h.service(VICTIM));
  await narrate(h, victimPid, before);
}

main().catch((err: Error) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  shutdown(1);
});
