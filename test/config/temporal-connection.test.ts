// temporal.tls and temporal.apiKey: how a cluster with mutual TLS or Temporal Cloud is reached. The
// files are read as the connection options carry them; problems are reported with their line.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/config';
import { clientConnectionOptions, nativeConnectionOptions } from '../../src/temporal/connection';
import { makeCerts, type TestCerts } from '../helpers/certs';
import { tempDir } from '../helpers/config';

const SERVICES = 'services: [ { name: a.service, host: h } ]\n';
const dir = tempDir('selfheal-temporal-tls-');
let certs: TestCerts;
before(() => {
  certs = makeCerts(dir);
});

const load = (yaml: string) => parseConfig(yaml + SERVICES, { env: {}, cwd: dir, source: 'selfheal.yaml' });

function problems(yaml: string): string[] {
  try {
    load(yaml);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.line}:${p.path}: ${p.message}`);
  }
  return [];
}

describe('temporal.tls and temporal.apiKey', () => {
  it('mutual TLS to a cluster: the CA, the client pair and the server name reach both connections', () => {
    const config = load(
      `temporal:\n  address: temporal.internal:7233\n  tls:\n    caFile: test-ca.crt\n    certFile: client.crt\n    keyFile: client.key\n    serverName: temporal.internal\n`,
    );
    for (const opts of [clientConnectionOptions(config), nativeConnectionOptions(config)]) {
      assert.equal(opts.address, 'temporal.internal:7233');
      const tls = opts.tls as Exclude<typeof opts.tls, boolean | undefined | null>;
      assert.ok(tls && typeof tls === 'object');
      assert.deepEqual(tls.serverRootCACertificate, readFileSync(join(dir, 'test-ca.crt')));
      assert.deepEqual(tls.clientCertPair?.crt, readFileSync(certs.clientCertFile));
      assert.deepEqual(tls.clientCertPair?.key, readFileSync(certs.clientKeyFile));
      assert.equal(tls.serverNameOverride, 'temporal.internal');
      assert.equal(opts.apiKey, undefined);
    }
  });

  it('Temporal Cloud with an API key: TLS with the system roots, the key on both connections', () => {
    const config = load('temporal: { address: "ns.acct.tmprl.cloud:7233", apiKey: "secret-key" }\n');
    for (const opts of [clientConnectionOptions(config), nativeConnectionOptions(config)]) {
      assert.equal(opts.apiKey, 'secret-key');
      assert.ok(opts.tls && typeof opts.tls === 'object', 'TLS on');
      assert.equal((opts.tls as { serverRootCACertificate?: Buffer }).serverRootCACertificate, undefined);
      assert.equal((opts.tls as { clientCertPair?: unknown }).clientCertPair, undefined);
    }
  });

  it('no TLS for a plain cluster address, and `tls: true` means the system roots', () => {
    assert.equal(clientConnectionOptions(load('temporal: { address: "10.0.0.5:7233" }\n')).tls, undefined);
    const on = clientConnectionOptions(load('temporal: { address: "10.0.0.5:7233", tls: true }\n')).tls;
    assert.ok(on && typeof on === 'object');
  });

  it('reports a missing file and a lone certFile at their lines', () => {
    const p = problems(`temporal:\n  address: t:7233\n  tls:\n    caFile: nope.crt\n    certFile: client.crt\n`);
    assert.ok(
      p.some((x) => /^4:temporal\.tls\.caFile: cannot read ".*nope\.crt" \(no such file\)/.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /^3:temporal\.tls: certFile and keyFile go together/.test(x)),
      p.join('\n'),
    );
  });
});
