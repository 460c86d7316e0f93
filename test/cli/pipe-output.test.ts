// Defect 10 (issue 8): output through a pipe whose reader is slow arrives whole, and the exit code
// is still the command's. The real CLI (bin/selfheal.js) writes into a pipe that is not read for a
// while, so its write buffer is full when the command returns.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN, ROOT } from '../helpers/cli';
import { tempDir } from '../helpers/config';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));

interface Piped {
  code: number;
  output: Buffer;
}

/**
 * Runs the CLI with `stream` on a real OS pipe (`sh`'s `|`) whose reader sleeps `stallMs` before
 * reading: the pipe (64 KiB) fills long before the command is done writing. The other stream goes
 * to /dev/null; the CLI's exit code comes back through a file.
 */
function runThroughSlowPipe(stream: 'stdout' | 'stderr', args: string[], stallMs = 1_500): Promise<Piped> {
  const codeFile = join(dir, `code-${Date.now()}-${Math.random()}`);
  const redirect = stream === 'stdout' ? '2>/dev/null' : '2>&1 >/dev/null';
  const script = `{ "$SELFHEAL_NODE" "$0" "$@" ${redirect}; echo $? > "$SELFHEAL_CODE"; } | { sleep ${stallMs / 1000}; cat; }`;
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script, BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, SELFHEAL_FROM_SOURCE: '1', SELFHEAL_NODE: process.execPath, SELFHEAL_CODE: codeFile },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`selfheal ${args[0]} through a pipe timed out`));
    }, 60_000);
    child.on('close', () => {
      clearTimeout(timer);
      const code = Number(readFileSync(codeFile, 'utf8').trim());
      resolve({ code, output: Buffer.concat(out) });
    });
  });
}

/** A config with `n` services whose names are long, so the output is a few hundred KB. */
function bigConfig(name: string, n: number, unit: (i: number) => string): string {
  const file = join(dir, name);
  const lines = ['services:'];
  for (let i = 0; i < n; i++) lines.push(`  - { name: '${unit(i)}', host: homelab }`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

describe('CLI output through a slow pipe', () => {
  it('writes all of a large output before exiting 0', async () => {
    const file = bigConfig(
      'big.yaml',
      1002,
      (i) => `crypto-agent@PAIR_${String(i).padStart(4, '0')}_${'X'.repeat(150)}.service`,
    );
    const r = await runThroughSlowPipe('stdout', [
      'privileges',
      '--config',
      file,
      '--host',
      'homelab',
      '--format',
      'sudoers',
    ]);
    assert.equal(r.code, 0);
    const text = r.output.toString();
    assert.ok(r.output.length > 200_000, `${r.output.length} bytes`);
    // Every unit is there, the last one included, and the output ends where the command ends it.
    for (const i of [0, 500, 1001]) assert.ok(text.includes(`PAIR_${String(i).padStart(4, '0')}_`), `unit ${i}`);
    assert.ok(text.endsWith('\n'));
  });

  it('writes all of a large error report before exiting with the error code', async () => {
    const file = bigConfig(
      'bad.yaml',
      1002,
      (i) => `bad;name_${String(i).padStart(4, '0')}_${'X'.repeat(150)}.service`,
    );
    const r = await runThroughSlowPipe('stderr', ['check-config', file]);
    assert.equal(r.code, 2);
    const text = r.output.toString();
    assert.ok(r.output.length > 200_000, `${r.output.length} bytes`);
    assert.match(text, /line 1003: services\[1001\]\.name: "bad;name_1001_X+\.service" contains characters/);
  });
});
