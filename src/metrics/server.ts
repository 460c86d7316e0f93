// A bare /metrics endpoint for processes without the API: the control worker, when it runs on its
// own, serves the counters its activities increment (restarts, escalations, audit events).
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { parseListen } from '../util/parse';

export async function serveMetrics(
  registry: Registry,
  listen: string,
): Promise<{ url: string; close(): Promise<void> }> {
  const hp = parseListen(listen);
  if (!hp) throw new Error(`invalid metrics listen address ${JSON.stringify(listen)}`);
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new Error(`worker.metrics ${listen} is already in use`, { cause: err }) : err),
    );
    server.listen(hp.port, hp.host, resolve);
  });
  return {
    url: `http://${listen}/metrics`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
