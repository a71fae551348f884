/**
 * Timers for tests: `setTimer` records each timer and nothing fires until the test says,
 * so a backoff of 30 s is tested without waiting 30 s.
 */
import type { SetTimer } from "../../src/runtime/restartBackoff.ts";

export interface FakeTimer {
  delayMs: number;
  fire(): void;
}

export class FakeTimers {
  private readonly timers = new Set<FakeTimer & { callback: () => void }>();

  readonly setTimer: SetTimer = (callback, delayMs) => {
    const t = {
      delayMs,
      callback,
      fire: () => {
        if (this.timers.delete(t)) callback();
      },
    };
    this.timers.add(t);
    return () => void this.timers.delete(t);
  };

  /** Timers set and neither fired nor cancelled. */
  get pending(): FakeTimer[] {
    return [...this.timers];
  }

  /** Fire the one pending timer (a test that expects exactly one). */
  fireOnly(): void {
    const [t, ...rest] = this.timers;
    if (!t || rest.length > 0) throw new Error(`expected one pending timer, found ${this.timers.size}`);
    t.fire();
  }
}
