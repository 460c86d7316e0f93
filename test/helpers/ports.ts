import { createServer, type Server } from 'node:net';

/** Reserves `n` distinct free loopback ports (all held open at once, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((r, j) => s.once('error', j).listen(0, '127.0.0.1', r));
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}

/**
 * `n` distinct free loopback ports below `below` (kernel-chosen ports are 32768 and up): the Temporal
 * server keeps its membership ports in a PostgreSQL smallint. Random probes, all held open at once.
 */
export async function freePortsBelow(n: number, below = 32_768, from = 10_000): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let tries = 0; servers.length < n; tries++) {
      if (tries > n * 50) throw new Error(`no ${n} free ports in ${from}-${below - 1}`);
      const port = from + Math.floor(Math.random() * (below - from));
      const s = createServer();
      const ok = await new Promise<boolean>((r) =>
        s.once('error', () => r(false)).listen(port, '127.0.0.1', () => r(true)),
      );
      if (ok) servers.push(s);
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}
