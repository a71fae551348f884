/**
 * The generation requests the API is answering now. A shutdown waits for them to finish
 * and, when its deadline passes, ends those left with a clean error: the abort carries the
 * error, and the route answers with it (503, or the last event of a stream).
 */
import type { ServerResponse } from "node:http";
import type { PitcherError } from "../core/errors.ts";

export class InFlightRequests {
  private readonly running = new Set<AbortController>();
  private idleWaiters: (() => void)[] = [];

  get size(): number {
    return this.running.size;
  }

  /** Count the request until its response closes (sent to the end, or the client gone). */
  track(abort: AbortController, response: ServerResponse): void {
    this.running.add(abort);
    response.once("close", () => {
      this.running.delete(abort);
      if (this.running.size === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    });
  }

  /** End every request being answered with `error`; returns how many there were. */
  endAll(error: PitcherError): number {
    const n = this.running.size;
    for (const abort of this.running) abort.abort(error);
    return n;
  }

  /** Resolves when no request is being answered. */
  idle(): Promise<void> {
    if (this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
