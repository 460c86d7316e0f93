// A real HTTP receiver on loopback that records what is POSTed to it (escalation webhooks).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export class WebhookSink {
  readonly received: Received[] = [];
  /** Status to answer with; set to 500 to simulate a receiver that is down. */
  status = 200;
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<WebhookSink> {
    const ref: { sink?: WebhookSink } = {};
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // keep the raw text
        }
        const sink = ref.sink!;
        const status = sink.status;
        if (status >= 200 && status < 300) sink.received.push({ path: req.url ?? '', headers: req.headers, body });
        res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    ref.sink = new WebhookSink(server, `http://127.0.0.1:${port}/escalations`);
    return ref.sink;
  }

  events(): { event: string; service: string; host: string; [k: string]: unknown }[] {
    return this.received.map((r) => r.body as { event: string; service: string; host: string });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}
