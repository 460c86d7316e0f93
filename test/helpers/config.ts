import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type Config } from '../../src/config/config';

// Every temp folder a test file made goes when its process exits (SELFHEAL_TEST_KEEP=1 keeps them).
const made: string[] = [];
process.once('exit', () => {
  if (process.env.SELFHEAL_TEST_KEEP === '1') return;
  for (const dir of made) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort: a process still writing into it
    }
  }
});

/** A temporary folder for one test file, removed when the test process exits. */
export function tempDir(prefix = 'selfheal-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Builds a validated Config from YAML, with dataDir and audit file in a fresh temp folder. */
export function testConfig(yaml: string, dir = tempDir()): Config {
  return parseConfig(yaml, { source: 'test-config.yaml', cwd: dir, env: {} });
}
