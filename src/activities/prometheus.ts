// A small Prometheus HTTP API client: instant queries and the alerts endpoint.

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: string;
  activeAt?: string;
}

export class PrometheusError extends Error {
  override name = 'PrometheusError';
}

export class PrometheusClient {
  constructor(
    readonly url: string,
    private readonly timeoutMs = 5_000,
  ) {}

  private async get<T>(path: string): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, { signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new PrometheusError(`Prometheus at ${this.url} is unreachable: ${(err as Error).message}`);
    }
    const body = (await res.json().catch(() => null)) as { status?: string; data?: T; error?: string } | null;
    if (!res.ok || body?.status !== 'success') {
      throw new PrometheusError(
        `Prometheus ${path.split('?')[0]} answered ${res.status}: ${body?.error ?? 'bad response'}`,
      );
    }
    return body.data as T;
  }

  async query(expr: string): Promise<PromSample[]> {
    const data = await this.get<{
      resultType: string;
      result: { metric: Record<string, string>; value: [number, string] }[];
    }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
    if (data.resultType !== 'vector') throw new PrometheusError(`expected a vector, got ${data.resultType}`);
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  /** A range query (`/api/v1/query_range`): every series with its [seconds, value] samples. */
  async queryRange(
    expr: string,
    range: { start: number; end: number; stepSeconds: number },
  ): Promise<{ metric: Record<string, string>; values: [number, string][] }[]> {
    const q = new URLSearchParams({
      query: expr,
      start: String(range.start / 1000),
      end: String(range.end / 1000),
      step: String(range.stepSeconds),
    });
    const data = await this.get<{
      resultType: string;
      result: { metric: Record<string, string>; values: [number, string][] }[];
    }>(`/api/v1/query_range?${q.toString()}`);
    if (data.resultType !== 'matrix') throw new PrometheusError(`expected a matrix, got ${data.resultType}`);
    return data.result;
  }

  /** The alerts list as Prometheus sent it: entries are not checked here (see pollOnce). */
  async alerts(): Promise<unknown[]> {
    const data = await this.get<{ alerts?: unknown } | null>('/api/v1/alerts');
    if (!Array.isArray(data?.alerts))
      throw new PrometheusError('Prometheus /api/v1/alerts answered without an alerts list');
    return data.alerts;
  }
}

/** Escapes a label value for a PromQL string literal. */
export function promString(value: string): string {
  return JSON.stringify(value);
}

function regexAlternation(values: string[]): string {
  return values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
}

/**
 * PromQL selecting the firing alerts of one service on one host. When the alert carried no host
 * label, the API used `instance` without its port, so match that form too.
 */
export function firingAlertsQuery(opts: {
  host: string;
  service: string;
  alertnames: string[];
  ignoreAlertnames: string[];
  serviceLabel: string;
  hostLabel: string;
}): string {
  const names = opts.alertnames.filter((n) => n && n !== 'manual');
  const nameMatcher = names.length
    ? `alertname=~${promString(regexAlternation(names))}`
    : opts.ignoreAlertnames.length
      ? `alertname!~${promString(regexAlternation(opts.ignoreAlertnames))}`
      : '';
  const common = [`alertstate="firing"`, `${opts.serviceLabel}=${promString(opts.service)}`, nameMatcher].filter(
    Boolean,
  );
  const byHost = [...common, `${opts.hostLabel}=${promString(opts.host)}`].join(',');
  const byInstance = [
    ...common,
    `${opts.hostLabel}=""`,
    `instance=~${promString(`${regexAlternation([opts.host])}(:[0-9]+)?`)}`,
  ].join(',');
  return `ALERTS{${byHost}} or ALERTS{${byInstance}}`;
}
