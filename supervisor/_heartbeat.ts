/**
 * Wedged workers: the supervisor pings each serving worker over its stdin
 * (the protocol's channel) every quarter of `bound`; the worker answers from
 * its event loop. One that has not answered for `bound` ms (a blocked event
 * loop, a process stopped by SIGSTOP or a debugger) is handed to `wedged`,
 * once. It does not tell a slow handler from a stuck one: only a loop that
 * runs nothing for `bound` ms counts.
 */
import type { Worker } from "./_worker.ts";

/** Starts the pings (none if `bound` is 0); returns what stops them. */
export function heartbeat(
  serving: () => readonly Worker[],
  bound: number,
  wedged: (worker: Worker, silentMs: number) => void,
): () => void {
  if (bound <= 0) return () => {};
  const told = new WeakSet<Worker>();
  const id = setInterval(() => {
    const now = performance.now();
    for (const worker of serving()) {
      if (worker.retiring || worker.gone || told.has(worker)) continue;
      const silent = now - worker.lastAlive;
      if (silent > bound) {
        told.add(worker);
        wedged(worker, Math.round(silent));
      } else worker.send({ kind: "ping" });
    }
  }, Math.max(25, Math.floor(bound / 4)));
  return () => clearInterval(id);
}
