import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type Config } from '../../src/config/config';

/** A temporary folder for one test file. */
export function tempDir(prefix = 'selfheal-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Builds a validated Config from YAML, with dataDir and audit file in a fresh temp folder. */
export function testConfig(yaml: string, dir = tempDir()): Config {
  return parseConfig(yaml, { source: 'test-config.yaml', cwd: dir, env: {} });
}
