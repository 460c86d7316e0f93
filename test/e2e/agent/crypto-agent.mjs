#!/usr/bin/env node
// A stand-in for the homelab's crypto-agent@<PAIR>.service, for the end-to-end tests and the demo.
// Plain Node, no dependencies. It does one "unit of work" every AGENT_WORK_MS (default 1 s) and
// then sets service_last_progress_timestamp_seconds to the current unix time, which is exactly
// the progress gauge the shipped ServiceStalled rule watches. It serves, on 127.0.0.1:AGENT_PORT:
//
//   GET  /metrics  Prometheus text format
//   POST /stall    stop working and backdate the last progress to 10 minutes ago
//   POST /resume   work again
//
// Environment (set by the unit template and its per-instance EnvironmentFile):
//   AGENT_INSTANCE   the unit's instance name (%i), e.g. BTC_USDT
//   AGENT_PORT       the port to listen on
//   AGENT_STATE_DIR  where it records each start (<instance>.starts) and its pid (<instance>.pid)
//   AGENT_FAIL=1     exit 1 right after starting, at every start (a unit that cannot come up)
import { appendFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import process from 'node:process';
import { clearInterval, setInterval, setTimeout } from 'node:timers';

const instance = process.env.AGENT_INSTANCE ?? 'unknown';
const port = Number(process.env.AGENT_PORT);
const stateDir = process.env.AGENT_STATE_DIR ?? null;
const workMs = Number(process.env.AGENT_WORK_MS ?? 1000);
const startedAt = Date.now() / 1000;

// One line per start: the tests count how many times systemd started this instance.
if (stateDir) appendFileSync(join(stateDir, `${instance}.starts`), `${new Date().toISOString()} ${process.pid}\n`);

if (process.env.AGENT_FAIL === '1') {
  process.stderr.write(`crypto-agent ${instance}: cannot start (AGENT_FAIL=1)\n`);
  process.exit(1);
}
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write(`crypto-agent ${instance}: AGENT_PORT is not set\n`);
  process.exit(2);
}

// The pid file lets the test harness kill a leftover agent by its id if the user manager died first.
const pidFile = stateDir ? join(stateDir, `${instance}.pid`) : null;
if (pidFile) writeFileSync(pidFile, `${process.pid}\n`);

let lastProgress = Date.now() / 1000;
let ticks = 0;
let stalled = false;

const timer = setInterval(() => {
  if (stalled) return;
  ticks++;
  lastProgress = Date.now() / 1000;
}, workMs);

function metrics() {
  return [
    '# HELP service_last_progress_timestamp_seconds Unix time at which the agent last finished a unit of work.',
    '# TYPE service_last_progress_timestamp_seconds gauge',
    `service_last_progress_timestamp_seconds ${lastProgress.toFixed(3)}`,
    '# HELP crypto_agent_work_units_total Units of work finished since start.',
    '# TYPE crypto_agent_work_units_total counter',
    `crypto_agent_work_units_total ${ticks}`,
    '# HELP crypto_agent_stalled 1 while the agent has been told to stall.',
    '# TYPE crypto_agent_stalled gauge',
    `crypto_agent_stalled ${stalled ? 1 : 0}`,
    '# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.',
    '# TYPE process_start_time_seconds gauge',
    `process_start_time_seconds ${startedAt.toFixed(3)}`,
    '',
  ].join('\n');
}

const server = createServer((req, res) => {
  const json = (code, body) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  if (req.method === 'GET' && req.url === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics());
  } else if (req.method === 'POST' && req.url === '/stall') {
    // Stop working, and pretend the last progress was 10 minutes ago. That is the state the agent
    // would be in had it been frozen for 10 minutes, so the rule's "> 300 s without progress"
    // condition holds at the next scrape instead of after 5 real minutes.
    stalled = true;
    lastProgress = Date.now() / 1000 - 600;
    json(200, { instance, pid: process.pid, stalled, lastProgress });
  } else if (req.method === 'POST' && req.url === '/resume') {
    stalled = false;
    json(200, { instance, pid: process.pid, stalled });
  } else {
    json(404, { error: 'not found' });
  }
});
server.listen(port, '127.0.0.1');

function stop() {
  clearInterval(timer);
  if (pidFile) rmSync(pidFile, { force: true });
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
