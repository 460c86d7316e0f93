// `selfheal simulate` as users run it: its help, --json, the HTML timeline, and its safety: it
// never contacts the configured Temporal (so no host queue is polled and no live workflow
// signalled), Prometheus or escalation webhook, and never writes the live audit log.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../helpers/cli';
import { tempDir } from '../helpers/config';

const FIXTURES = join(__dirname, 'fixtures');
const dir = tempDir('selfheal-simulate-cli-');
let trap: Server;
let connections = 0;
let configFile: string;
const audit = join(dir, 'live-audit.log');
const auditBefore = '{"time":"2026-01-01T00:00:00Z","event":"incident-opened"}\n';

before(async () => {
  // One listener stands in for the live Temporal frontend, Prometheus and the escalation webhook.
  trap = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r));
  const port = (trap.address() as { port: number }).port;
  writeFileSync(audit, auditBefore);
  configFile = join(dir, 'live.yaml');
  writeFileSync(
    configFile,
    readFileSync(join(FIXTURES, 'defaults.yaml'), 'utf8')
      .replace('address: embedded', `address: 127.0.0.1:${port}`)
      .replace(/file: .*/, `file: ${audit}`)
      .replace(
        'services:',
        `prometheus: { url: "http://127.0.0.1:${port}" }\nescalation:\n  webhooks: [{ url: "http://127.0.0.1:${port}/hook" }]\nservices:`,
      ),
  );
});
after(() => new Promise((r) => trap.close(r)));

describe('selfheal simulate (CLI)', { timeout: 240_000 }, () => {
  it('--help documents the sources, the recovery models, --compare, --json and --out', async () => {
    const r = await runCli(['simulate', '--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const s of [
      '--from',
      '--alerts',
      '--audit',
      '--prometheus',
      '--compare',
      '--json',
      '--out',
      'restart-fixes',
      'as-recorded',
    ]) {
      assert.ok(r.stdout.includes(s), `help mentions ${s}:\n${r.stdout}`);
    }
  });

  it('bad usage exits 2 with a reason', async () => {
    const none = await runCli(['simulate', '-c', configFile]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /exactly one of --from/);
    const missing = await runCli(['simulate', '-c', configFile, '--alerts', join(dir, 'nope.jsonl')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.jsonl/);
  });

  it('simulates with --json and --out, and touches nothing live', async () => {
    const out = join(dir, 'timeline.html');
    const r = await runCli(
      ['simulate', '-c', configFile, '--alerts', join(FIXTURES, 'flapping.jsonl'), '--json', '--out', out],
      { timeoutMs: 180_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { total: { restarts: number }; services: { service: string }[] };
    assert.equal(report.total.restarts, 4);
    assert.equal(report.services.length, 3);
    const html = readFileSync(out, 'utf8');
    assert.match(html, /^<!doctype html>/);
    assert.equal((html.match(/<svg /g) ?? []).length, 1 + 3, 'an axis and one timeline per service');
    assert.ok(!/<script|src="http/.test(html), 'self-contained: no scripts, no external files');
    assert.equal((html.match(/<circle [^>]*class="restart"/g) ?? []).length, 4, 'one mark per restart');
    assert.equal(connections, 0, 'nothing connected to the configured Temporal, Prometheus or webhook');
    assert.equal(readFileSync(audit, 'utf8'), auditBefore, 'the live audit log is untouched');
  });

  it('the --from source with an unreachable Prometheus fails clearly', async () => {
    const r = await runCli(['simulate', '-c', configFile, '--from', '1h', '--prometheus', 'http://127.0.0.1:1']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Prometheus at http:\/\/127\.0\.0\.1:1 is unreachable/);
  });
});
