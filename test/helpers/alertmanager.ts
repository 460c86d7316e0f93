// The shipped monitoring/alertmanager.yml, changed only where a test machine differs: short waits,
// and the receivers pointed at the test's selfheal API, token file and admin sink.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { ROOT } from './cli';

interface Route {
  receiver?: string;
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: Route[];
}

interface Receiver {
  name: string;
  webhook_configs?: { url: string; http_config?: { authorization?: { credentials_file?: string } } }[];
}

export interface AlertmanagerOverlay {
  /** selfheal's webhook, e.g. http://127.0.0.1:PORT/selfheal/trigger. */
  webhookUrl: string;
  /** File holding selfheal's api.token (the shipped config reads /etc/selfheal/token). */
  tokenFile: string;
  /** Where the admin receiver posts; left as shipped when absent. */
  adminUrl?: string;
}

export function shippedAlertmanagerConfig(): { route: Route; receivers: Receiver[] } {
  return parse(readFileSync(join(ROOT, 'monitoring', 'alertmanager.yml'), 'utf8')) as {
    route: Route;
    receivers: Receiver[];
  };
}

/** The overlaid configuration as YAML text. */
export function alertmanagerOverlay(o: AlertmanagerOverlay): string {
  const am = shippedAlertmanagerConfig();
  // Short grouping so a notification leaves within seconds. repeat_interval stays longer than any
  // test run: a repeated notification for a service that is still down would (correctly) open a new
  // incident, e.g. right after `skip`, which is not what the tests are about.
  const shorten = (r: Route) => {
    if (r.group_wait) r.group_wait = '1s';
    if (r.group_interval) r.group_interval = '2s';
    if (r.repeat_interval) r.repeat_interval = '1h';
    r.routes?.forEach(shorten);
  };
  shorten(am.route);
  const receiver = (name: string) => {
    const r = am.receivers.find((x) => x.name === name)?.webhook_configs?.[0];
    if (!r) throw new Error(`monitoring/alertmanager.yml has no webhook receiver ${name}`);
    return r;
  };
  const selfheal = receiver('selfheal');
  selfheal.url = o.webhookUrl;
  if (!selfheal.http_config?.authorization) throw new Error('the selfheal receiver has no bearer authorization');
  selfheal.http_config.authorization.credentials_file = o.tokenFile;
  if (o.adminUrl) receiver('admin').url = o.adminUrl;
  return stringify(am);
}
