// Builds stale-clock-validation-timer.json from the real history in
// unreplayable/2026-12-04-second-validation-timer.json: what a live worker saw, as a replayable test.
//
// In that run the task in which the validation timer fired (events 69-71) ran with the workflow
// clock of the previous task (the complete time of its last local activity, 16:33:07.364) instead
// of its own start (16:33:09.425): `until - Date.now()` was 1.993 s in both tasks. That worker then
// started a second 1.993 s timer (events 72-76). This script keeps events 1-71, adds the marker of the patch that fixes
// this to the run's first task (a run the current code starts has it), sets event 70's time
// to the clock the live worker read, drops the second timer and the task it woke (72-76), and
// renumbers the rest (the re-check, restart and verification of the same run) so that the history
// is what a workflow that ends its wait when its timer fires would have written. The forged start
// time of that task (event 70) precedes its own TimerFired (event 69): no server writes that, but it
// is the clock the live worker read. The current workflow must replay it. Code from before the fix
// fails on it twice over: unmodified, on the patch marker it does not know; with only the patch id
// added (the patch forced off), with "Timer machine does not handle ..." (it starts a second timer).
// Run: npx tsx test/histories/forge-stale-clock.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = __dirname;
interface Payloads {
  payloads: { data: string }[];
}
interface Event {
  eventId: string;
  eventTime: string;
  markerRecordedEventAttributes?: { details: Record<string, Payloads> };
  upsertWorkflowSearchAttributesEventAttributes?: { searchAttributes: { indexedFields: Record<string, { data: string }> } };
}
const src = JSON.parse(readFileSync(join(dir, 'unreplayable', '2026-12-04-second-validation-timer.json'), 'utf8')) as {
  events: Event[];
};
const PATCH = 'wait-ends-when-its-timer-fires';
const DROP_FROM = 72;
const DROP_TO = 76;
const byId = (id: number): Event => src.events.find((e) => Number(e.eventId) === id)!;
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64');

// The clock the live worker read in the timer-fired task: the complete time of the last local
// activity of the task that started the timer (event 65's marker).
const marker = JSON.parse(
  Buffer.from(byId(65).markerRecordedEventAttributes!.details.data.payloads[0].data, 'base64').toString(),
);
const stale = new Date(Number(marker.complete_time.seconds) * 1000 + Math.floor(marker.complete_time.nanos / 1e6));

// A run started by the current code decides its patches in its first task: one more marker (and its
// TemporalChangeVersion upsert) after the four of this run's first task (events 6-13).
const patchMarker = structuredClone(byId(12));
patchMarker.markerRecordedEventAttributes!.details['patch-data'].payloads[0].data = b64({ id: PATCH, deprecated: false });
const patchUpsert = structuredClone(byId(13));
const versions = patchUpsert.upsertWorkflowSearchAttributesEventAttributes!.searchAttributes.indexedFields.TemporalChangeVersion;
versions.data = b64([...JSON.parse(Buffer.from(versions.data, 'base64').toString()), PATCH].sort());

const kept: Event[] = [];
for (const e of src.events) {
  const id = Number(e.eventId);
  if (id >= DROP_FROM && id <= DROP_TO) continue;
  const copy = structuredClone(e);
  if (id === 70) copy.eventTime = stale.toISOString();
  kept.push(copy);
  if (id === 13) kept.push(patchMarker, patchUpsert);
}
// New ids in order; a reference to the dropped task's completion (76) now means the task before (71).
const newId = new Map<number, number>();
kept.forEach((e, i) => {
  if (e !== patchMarker && e !== patchUpsert) newId.set(Number(e.eventId), i + 1);
});
newId.set(DROP_TO, newId.get(DROP_FROM - 1)!);
const mapRef = (v: string): string => {
  const n = newId.get(Number(v));
  if (n == null) throw new Error(`reference to dropped event ${v}`);
  return String(n);
};
const renumber = (o: unknown): unknown => {
  if (Array.isArray(o)) return o.map(renumber);
  if (o == null || typeof o !== 'object') return o;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (/EventId$/.test(k)) out[k] = mapRef(v as string);
    else if (k === 'timerId' && Number(v) > 4) out[k] = String(Number(v) - 1);
    else out[k] = renumber(v);
  }
  return out;
};
const events = kept.map((e, i) => ({ ...(renumber(e) as Event), eventId: String(i + 1) }));
writeFileSync(join(dir, 'stale-clock-validation-timer.json'), JSON.stringify({ events }, null, 2) + '\n');
console.log(`wrote ${events.length} events; the timer-fired task starts at ${stale.toISOString()} (was ${byId(70).eventTime})`);
