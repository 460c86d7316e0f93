#!/usr/bin/env node
'use strict';
// Runs the built CLI (dist/, made by `npm run build`); from a source checkout without a build it
// falls back to running the TypeScript sources through tsx.
const { existsSync } = require('node:fs');
const { join } = require('node:path');

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
cli.main(process.argv).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`selfheal: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
