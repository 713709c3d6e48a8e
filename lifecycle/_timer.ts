/** A timer as a promise that can be cancelled. */
export interface Timer<T> {
  /** Resolves with the timer's value once the time is up. */
  readonly promise: Promise<T>;
  /** Cancels the timer; the promise then never resolves. */
  clear(): void;
}

/** Resolves with `value` after `ms` milliseconds, unless cleared first. */
export function timer<T>(ms: number, value: T): Timer<T> {
  let id: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<T>((resolve) => {
    id = setTimeout(() => resolve(value), ms);
  });
  return { promise, clear: () => clearTimeout(id) };
}
