// Reading signal payloads. Signals can come from anywhere (the Temporal UI, the CLI, an older API),
// so payloads are read field by field and a malformed one is ignored instead of failing the task.
import { MAX_ALERT_ID_LENGTH, MAX_ALERT_NAME_LENGTH, type AlertRef, type HumanActionPayload } from './definitions';

export function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])].sort();
}

export function payloadObject(p: unknown): Record<string, unknown> {
  return p !== null && typeof p === 'object' && !Array.isArray(p) ? (p as Record<string, unknown>) : {};
}

function stringList(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;
}

export const clipName = (n: string) => n.slice(0, MAX_ALERT_NAME_LENGTH);

/** Alert names of a payload, clipped the same way on firing and on resolve. */
export function cleanNames(names: unknown): string[] {
  return union([], (stringList(names) ?? []).filter((n) => n.length > 0).map(clipName));
}

/** Alert identities of a payload; a name without identity is one alert (`name:<name>`). */
export function alertRefs(p: Record<string, unknown>): AlertRef[] {
  const refs: AlertRef[] = [];
  if (Array.isArray(p.alerts)) {
    for (const a of p.alerts) {
      const o = payloadObject(a);
      if (typeof o.id === 'string' && o.id && typeof o.name === 'string') {
        refs.push({ id: o.id.slice(0, MAX_ALERT_ID_LENGTH), name: clipName(o.name) });
      }
    }
  }
  if (refs.length) return refs;
  return cleanNames(p.alertnames).map((name) => ({ id: `name:${name}`, name }));
}

export function humanPayload(p: unknown): HumanActionPayload {
  const o = payloadObject(p);
  const text = (v: unknown, n: number) => (typeof v === 'string' ? v.slice(0, n) : undefined);
  return { by: text(o.by, 100), reason: text(o.reason, 500), incidentId: text(o.incidentId, 100) };
}

/** Carried state from before identities held plain names: each becomes one alert. */
export function migrateFiring(firing: readonly (AlertRef | string)[] | undefined): AlertRef[] {
  return (firing ?? []).map((f) => (typeof f === 'string' ? { id: `name:${f}`, name: f } : f));
}
