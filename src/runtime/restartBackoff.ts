/**
 * When the pool tries again to start a device worker that died and would not come back:
 * exponential backoff to a cap, so a device that cannot start (no GPU memory, a driver gone,
 * a broken install) neither spins forking workers nor stays down for good. Timers live
 * here and in the pool, never in the scheduler; tests inject `SetTimer` and fire it by hand.
 */

export interface RestartBackoff {
  /** Wait before the first retry (the first attempt runs at once, right after the crash). */
  firstDelayMs: number;
  /** The longest wait; every retry after the quick ones waits this long. */
  maxDelayMs: number;
  /** Retries at doubling waits; while they last the device is `restarting`, after them `down`. */
  quickRetries: number;
  /** A start that has not come back by then counts as failed (a worker hung at start-up). */
  startTimeoutMs: number;
}

/** 0.5, 1, 2, 4, 8, 16 s, then every 30 s; a start may take 2 min (a GPU's first init). */
export const DEFAULT_RESTART_BACKOFF: RestartBackoff = { firstDelayMs: 500, maxDelayMs: 30_000, quickRetries: 6, startTimeoutMs: 120_000 };

/** Call `callback` once after `delayMs`; the returned function cancels it. */
export type SetTimer = (callback: () => void, delayMs: number) => () => void;

/** Wall-clock timers that do not keep the process alive (the pool cancels them on close). */
export const wallTimer: SetTimer = (callback, delayMs) => {
  const t = setTimeout(callback, delayMs);
  t.unref();
  return () => clearTimeout(t);
};

/** The wait before the next attempt, after `failedAttempts` (≥ 1) attempts in a row failed. */
export function retryDelayMs(failedAttempts: number, b: RestartBackoff): number {
  if (failedAttempts > b.quickRetries) return b.maxDelayMs;
  return Math.min(b.maxDelayMs, b.firstDelayMs * 2 ** (failedAttempts - 1));
}

/** `up`; `restarting`: quick retries left; `down`: they are spent, retried every `maxDelayMs`. */
export type DeviceState = "up" | "restarting" | "down";

export function stateAfter(failedAttempts: number, b: RestartBackoff): Exclude<DeviceState, "up"> {
  return failedAttempts > b.quickRetries ? "down" : "restarting";
}

/** How a device is, for health checks and the dashboard. */
export interface DeviceStatus {
  state: DeviceState;
  /** Start attempts since it went down (0 while up). */
  restartAttempts: number;
  /** Why the last attempt failed, or (before one failed) why the device went down; null while up. */
  lastError: string | null;
  /** Until the next attempt; null while one runs or the device is up. */
  nextRetryInMs: number | null;
}

/** Reject with `message` when `work` has not settled within `timeoutMs` (its late result is dropped). */
export function withTimeout<T>(work: Promise<T>, timeoutMs: number, setTimer: SetTimer, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const cancel = setTimer(() => reject(new Error(message)), timeoutMs);
    work.then(
      (v) => {
        cancel();
        resolve(v);
      },
      (e: unknown) => {
        cancel();
        reject(e);
      },
    );
  });
}
