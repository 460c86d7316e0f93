// Test certificates made with the real `openssl`: a CA, a server certificate for the given IP
// addresses and names, and a client certificate signed by the same CA (for mutual TLS).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCerts {
  caFile: string;
  certFile: string;
  keyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  /** A CA that signed nothing here: a client certificate from it must be refused. */
  otherCaFile: string;
  otherClientCertFile: string;
  otherClientKeyFile: string;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

function ca(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2'].concat([
      '-subj',
      `/CN=${name}`,
      '-keyout',
      key,
      '-out',
      cert,
    ]),
  );
  return { cert, key };
}

function signed(
  dir: string,
  name: string,
  issuer: { cert: string; key: string },
  ext: string,
): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  openssl(
    ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`].concat([
      '-keyout',
      key,
      '-out',
      csr,
    ]),
  );
  openssl(
    ['x509', '-req', '-in', csr, '-CA', issuer.cert, '-CAkey', issuer.key, '-CAcreateserial', '-days', '2'].concat([
      '-extfile',
      extFile,
      '-out',
      cert,
    ]),
  );
  return { cert, key };
}

/** Certificates in `dir` for a server reachable at `ips` (127.0.0.1 always) and `names` (localhost always). */
export function makeCerts(dir: string, opts: { ips?: string[]; names?: string[] } = {}): TestCerts {
  const root = ca(dir, 'test-ca');
  const other = ca(dir, 'other-ca');
  const san = [
    ...['127.0.0.1', ...(opts.ips ?? [])].map((ip) => `IP:${ip}`),
    ...['localhost', ...(opts.names ?? [])].map((n) => `DNS:${n}`),
  ].join(',');
  const server = signed(dir, 'server', root, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  const client = signed(dir, 'client', root, 'extendedKeyUsage=clientAuth\n');
  const stranger = signed(dir, 'stranger', other, 'extendedKeyUsage=clientAuth\n');
  return {
    caFile: root.cert,
    certFile: server.cert,
    keyFile: server.key,
    clientCertFile: client.cert,
    clientKeyFile: client.key,
    otherCaFile: other.cert,
    otherClientCertFile: stranger.cert,
    otherClientKeyFile: stranger.key,
  };
}
