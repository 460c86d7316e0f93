// Registers selfheal's custom search attributes in the namespace (idempotent).
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTES } from '../workflows/definitions';

const TYPES = {
  Keyword: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Int: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_INT,
};

/** Returns the names it had to add. Throws with a hint when the server refuses. */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  let have = new Set<string>();
  try {
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    have = new Set(Object.keys(existing.customAttributes ?? {}));
  } catch (err) {
    // The time-skipping test server implements AddSearchAttributes only.
    if ((err as { code?: number }).code !== 12 /* UNIMPLEMENTED */) throw err;
  }
  const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([name]) => !have.has(name));
  if (missing.length === 0) return [];
  try {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map(([name, type]) => [name, TYPES[type]])),
    });
  } catch (err) {
    const cmds = missing.map(
      ([n, t]) => `temporal operator search-attribute create --namespace ${namespace} --name ${n} --type ${t}`,
    );
    throw new Error(
      `cannot register search attributes ${missing.map(([n]) => n).join(', ')}: ${(err as Error).message}\n` +
        `Register them once with:\n  ${cmds.join('\n  ')}\nor set temporal.searchAttributes: false.`,
      { cause: err },
    );
  }
  return missing.map(([n]) => n);
}
