#!/usr/bin/env node
'use strict';
// Runs the built CLI (dist/, made by `npm run build`); from a source checkout without a build it
// falls back to running the TypeScript sources through tsx.
const { existsSync } = require('node:fs');
const { join } = require('node:path');

// Before anything else: on an older Node.js the errors would say nothing useful. Debian 12's own
// nodejs package is 18, and the systemd units run whatever `node` is first on the PATH.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 3)) {
  process.stderr.write(
    `selfheal: needs Node.js 20.3 or later; this is ${process.version} (${process.execPath}).\n` +
      'Install Node.js 20 or 22 from NodeSource (https://github.com/nodesource/distributions, /usr/bin/node) or\n' +
      'nodejs.org (/usr/local/bin/node); see README.md, "Install on a host (systemd)".\n',
  );
  process.exit(1);
}

const dist = join(__dirname, '..', 'dist', 'cli', 'index.js');
let cli;
if (existsSync(dist) && !process.env.SELFHEAL_FROM_SOURCE) {
  cli = require(dist);
} else {
  try {
    require('tsx/cjs');
  } catch {
    process.stderr.write('selfheal: not built yet; run `npm run build` (or `npm install` for the dev tools)\n');
    process.exit(1);
  }
  cli = require('../src/cli/index.ts');
}
// Exits with `code` once everything written to stdout and stderr has left the process: through a
// pipe, writes are asynchronous and process.exit() would drop what the reader has not taken yet.
function exitAfterOutput(code) {
  process.exitCode = code;
  const pending = [process.stdout, process.stderr].filter((s) => s.writableLength > 0 && !s.destroyed);
  let left = pending.length;
  if (left === 0) return process.exit(code);
  for (const s of pending) {
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      if (--left === 0) process.exit(code);
    };
    s.once('drain', done);
    // A reader that went away (EPIPE) will never drain: nothing more to wait for.
    s.once('error', done);
    s.once('close', done);
  }
}

cli.main(process.argv).then(exitAfterOutput, (err) => {
  process.stderr.write(`selfheal: ${err && err.stack ? err.stack : err}\n`);
  exitAfterOutput(1);
});
