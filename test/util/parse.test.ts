import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopback, parseSize } from '../../src/util/parse';

describe('isLoopback', () => {
  it('knows the loopback addresses, and nothing else', () => {
    for (const h of ['localhost', '127.0.0.1', '127.1.2.3', '::1']) assert.equal(isLoopback(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'localhost.example.com', '127.example.com']) {
      assert.equal(isLoopback(h), false, h);
    }
  });
});

describe('parseSize', () => {
  it('reads bytes, decimal and binary units, in any case', () => {
    assert.equal(parseSize('512'), 512);
    assert.equal(parseSize('10B'), 10);
    assert.equal(parseSize('512KiB'), 512 * 1024);
    assert.equal(parseSize('2 MiB'), 2 * 1024 * 1024);
    assert.equal(parseSize('1.5kb'), 1500);
    assert.equal(parseSize('1GB'), 1e9);
  });
  it('refuses what is not a size', () => {
    for (const s of ['', 'lots', '-1MiB', '1TB', '1e3', 'MiB']) assert.equal(parseSize(s), null, s);
  });
});
