/** A promise with its resolve and reject at hand (held calls, pending calls of the fakes). */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: Error): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A held call's waiter may never come: no unhandled rejection for it.
  promise.catch(() => {});
  return { promise, resolve, reject };
}
