// An HTTP server that answers Prometheus' /api/v1/alerts with whatever alerts a test sets, so the
// real PrometheusClient and `selfheal poll` intake can be fed alert sets no rule file could produce.
// Everything else answers 404.
import { createServer, type Server } from 'node:http';
import type { PromAlert } from '../../src/activities/prometheus';

export interface AlertsServer {
  url: string;
  /** The body of the next answers: an alert list, or raw JSON text (a malformed answer). */
  set(alerts: PromAlert[] | string): void;
  close(): Promise<void>;
}

export async function startAlertsServer(): Promise<AlertsServer> {
  let body = JSON.stringify({ status: 'success', data: { alerts: [] } });
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url ?? '').split('?')[0] === '/api/v1/alerts') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    set(alerts) {
      body = typeof alerts === 'string' ? alerts : JSON.stringify({ status: 'success', data: { alerts } });
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}
