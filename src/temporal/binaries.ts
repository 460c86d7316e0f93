// Where the Temporal CLI and the time-skipping test server are: an explicit environment variable,
// else what `npm run setup` installed into .tools/, else a `temporal` on the PATH.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** The project folder (the one whose package.json is selfheal's). */
export function projectRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'selfheal') return dir;
      } catch {
        // keep looking
      }
    }
    dir = dirname(dir);
  }
  return process.cwd();
}

interface InstalledPaths {
  temporal?: string | null;
  testServer?: string | null;
}

function installed(): InstalledPaths {
  const root = projectRoot();
  try {
    const p = JSON.parse(readFileSync(join(root, '.tools', 'temporal', 'paths.json'), 'utf8')) as InstalledPaths;
    const abs = (x?: string | null) => (x ? resolve(root, x) : null);
    return { temporal: abs(p.temporal), testServer: abs(p.testServer) };
  } catch {
    return {};
  }
}

function onPath(bin: string): string | null {
  try {
    return execFileSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** The Temporal CLI (for `temporal server start-dev`), or null when none is installed. */
export function temporalCliPath(env: NodeJS.ProcessEnv = process.env): string | null {
  const fromEnv = env.SELFHEAL_TEMPORAL_BIN;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null;
  const p = installed().temporal;
  if (p && existsSync(p)) return p;
  return onPath('temporal');
}

/** The native time-skipping test server, or null (then @temporalio/testing downloads one). */
export function testServerPath(env: NodeJS.ProcessEnv = process.env): string | null {
  const fromEnv = env.SELFHEAL_TEST_SERVER_BIN;
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null;
  const p = installed().testServer;
  return p && existsSync(p) ? p : null;
}
