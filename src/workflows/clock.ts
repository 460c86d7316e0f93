// The time workflow decisions use: the workflow clock, but never before a deadline whose timer has
// fired. In the task a timer wakes, the clock can read an earlier task's time (PATCH_TIMER_ENDS_WAIT in
// state.ts has the story); a fired timer cannot be earlier than its deadline, live or on replay. Off
// (runs recorded before their patch), it is the plain workflow clock.
export class FiredClock {
  private firedUntil = 0;

  constructor(public on = false) {}

  now(): number {
    return this.on ? Math.max(Date.now(), this.firedUntil) : Date.now();
  }

  /** A timer for `until` has fired. */
  fired(until: number): void {
    if (until > this.firedUntil) this.firedUntil = until;
  }
}
