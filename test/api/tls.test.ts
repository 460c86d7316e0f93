// api.tls: HTTPS with the configured certificate, mutual TLS when clientCaFile is set, and a config
// that refuses a non-loopback listen address without TLS unless api.allowPlaintext says so.
// Certificates are made by the real openssl; requests are real HTTPS requests.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { startApiServer, type ApiServer } from '../../src/api/server';
import { ConfigError, parseConfig } from '../../src/config/config';
import { createMetrics } from '../../src/metrics/metrics';
import { makeCerts, type TestCerts } from '../helpers/certs';
import { tempDir, testConfig } from '../helpers/config';
import { freePort } from '../helpers/ports';

const TOKENS = 'token: webhook-token-0123456789, adminToken: admin-token-0123456789abc';
const SERVICES = 'services: [ { name: a.service, host: h } ]\n';
const dir = tempDir('selfheal-tls-');
let certs: TestCerts;
let connection: Connection;

before(() => {
  certs = makeCerts(dir);
  connection = Connection.lazy({ address: '127.0.0.1:1' }); // /healthz never calls Temporal
});
after(async () => connection?.close());

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, { env: {}, cwd: dir, source: 'selfheal.yaml' });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.line}:${p.path}: ${p.message}`);
  }
  return [];
}

/** GET over HTTPS: the status, or the error that ended the request (handshake refused, bad certificate). */
function get(url: string, tls: { ca?: string; cert?: string; key?: string }): Promise<number> {
  const read = (f?: string) => (f ? readFileSync(f) : undefined);
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: read(tls.ca), cert: read(tls.cert), key: read(tls.key), timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function serve(tlsYaml: string): Promise<ApiServer> {
  const port = await freePort();
  const config = testConfig(`api: { listen: "127.0.0.1:${port}", ${TOKENS}, tls: ${tlsYaml} }\n${SERVICES}`, dir);
  return startApiServer({ config, client: new Client({ connection }), metrics: createMetrics() }, { logger: false });
}

describe('api.tls in the config', () => {
  it('refuses a non-loopback api.listen without TLS, naming api.tls and api.allowPlaintext, at its line', () => {
    const p = problems(`temporal: {}\napi:\n  listen: 0.0.0.0:5000\n  ${TOKENS.replace(', ', '\n  ')}\n${SERVICES}`);
    assert.equal(p.length, 1, p.join('\n'));
    assert.match(p[0], /^3:api\.listen: "0\.0\.0\.0:5000" is not a loopback address/);
    assert.match(p[0], /api\.tls/);
    assert.match(p[0], /api\.allowPlaintext: true/);
  });

  it('accepts a non-loopback api.listen with api.allowPlaintext: true or with api.tls', () => {
    assert.deepEqual(problems(`api: { listen: "10.1.2.3:5000", allowPlaintext: true, ${TOKENS} }\n${SERVICES}`), []);
    const tls = `{ certFile: ${certs.certFile}, keyFile: ${certs.keyFile} }`;
    assert.deepEqual(problems(`api: { listen: "0.0.0.0:5000", tls: ${tls}, ${TOKENS} }\n${SERVICES}`), []);
  });

  it('reports a missing key, a missing file and a folder with its line', () => {
    const missingKey = join(dir, 'missing.key');
    const yaml = [
      'api:',
      '  tls:',
      `    certFile: ${join(dir, 'nope.crt')}`,
      `    clientCaFile: ${dir}`,
      `    keyFile: ${missingKey}`,
      SERVICES,
    ].join('\n');
    const p = problems(yaml);
    assert.ok(
      p.some((x) => new RegExp(`^3:api\\.tls\\.certFile: cannot read ".*nope\\.crt" \\(no such file\\)`).test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /^4:api\.tls\.clientCaFile: cannot read .* \(is a folder\)/.test(x)),
      p.join('\n'),
    );
    assert.ok(
      p.some((x) => /^5:api\.tls\.keyFile: cannot read .*missing\.key/.test(x)),
      p.join('\n'),
    );
    assert.ok(
      problems(`api: { tls: { certFile: ${certs.certFile} } }\n${SERVICES}`).some((x) =>
        /^1:api\.tls\.keyFile: is required/.test(x),
      ),
    );
  });

  it('resolves relative certificate paths against the config folder', () => {
    const c = parseConfig(`api: { tls: { certFile: server.crt, keyFile: server.key } }\n${SERVICES}`, {
      env: {},
      cwd: dir,
    });
    assert.equal(c.api.tls?.certFile, join(dir, 'server.crt'));
    assert.equal(c.api.tls?.clientCaFile, null);
  });
});

describe('the API over HTTPS', () => {
  it('serves HTTPS with the configured certificate', async () => {
    const api = await serve(`{ certFile: ${certs.certFile}, keyFile: ${certs.keyFile} }`);
    try {
      assert.match(api.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(await get(`${api.url}/healthz`, { ca: certs.caFile }), 200);
      // A client that does not trust the CA refuses the server.
      await assert.rejects(get(`${api.url}/healthz`, {}), /self[- ]signed|unable to verify|certificate/i);
      // Plain HTTP on the same port gets no API.
      const plain = await fetch(api.url.replace('https:', 'http:') + '/healthz').then(
        (r) => r.status,
        () => 0,
      );
      assert.notEqual(plain, 200);
    } finally {
      await api.close();
    }
  });

  it('with clientCaFile requires a client certificate signed by that CA', async () => {
    const api = await serve(
      `{ certFile: ${certs.certFile}, keyFile: ${certs.keyFile}, clientCaFile: ${certs.caFile} }`,
    );
    try {
      const ok = await get(`${api.url}/healthz`, {
        ca: certs.caFile,
        cert: certs.clientCertFile,
        key: certs.clientKeyFile,
      });
      assert.equal(ok, 200);
      await assert.rejects(
        get(`${api.url}/healthz`, { ca: certs.caFile }),
        /certificate|socket hang up|ECONNRESET|alert/i,
      );
      await assert.rejects(
        get(`${api.url}/healthz`, { ca: certs.caFile, cert: certs.otherClientCertFile, key: certs.otherClientKeyFile }),
        /certificate|socket hang up|ECONNRESET|alert|unknown ca/i,
      );
    } finally {
      await api.close();
    }
  });
});
