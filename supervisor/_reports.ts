/**
 * How the supervisor reports on its workers: an exit in words, the last
 * stderr lines of one that failed, the error of one that never became
 * ready, and the kernel setting it prints at start.
 */
import { WORKER_FLAGS } from "./_protocol.ts";
import { since } from "../lifecycle/_log.ts";
import { signalExitCode } from "../lifecycle/_signals.ts";
import type { Worker } from "./_worker.ts";

export function describeExit(status: Deno.CommandStatus): string {
  return status.signal
    ? `was killed by ${status.signal}`
    : `exited with code ${status.code}`;
}

/** What the exit codes of a drained `serve()` process mean. */
const EXIT_MEANINGS: Record<number, string> = {
  1: "a cleanup hook failed",
  69: "the drain failed (a drainer threw, or it broke a request)",
  70: "an uncaught error or unhandled rejection outside the handlers",
  124: "requests were cut at the drain deadline",
  130: "forced by a second SIGINT",
  137: "killed",
  143: "forced by a second SIGTERM",
};

/** The exit code a status stands for: 128 + the signal's number if killed. */
export function exitCodeOf(status: Deno.CommandStatus): number {
  return status.signal === null ? status.code : signalExitCode(status.signal);
}

/**
 * How bad a worker's exit code is, for the supervisor's own: a clean drain
 * (0), a hook that failed (1), any other error, the deadline that cut
 * requests (124), and worst a forced or killed exit (128 + a signal).
 */
function severity(code: number): number {
  if (code === 0) return 0;
  if (code === 1) return 1;
  if (code === 124) return 3;
  return code > 128 ? 4 : 2;
}

/**
 * The supervisor's exit code from its workers' at the stop: 0 only if
 * every one drained cleanly, otherwise the worst (see `severity`); the
 * first worker with that code is named.
 */
export function worstExit(
  exits: { pid: number; generation: number; code: number }[],
): { code: number; pid?: number; generation?: number } {
  let worst: { code: number; pid?: number; generation?: number } = { code: 0 };
  for (const exit of exits) {
    if (severity(exit.code) > severity(worst.code)) worst = exit;
  }
  return worst;
}

/**
 * Why a new worker did not become ready: it could not be spawned, exited
 * first, or did not report within `readyTimeout`. The message ends with the
 * worker's last stderr lines.
 *
 * @example
 * ```ts ignore
 * import { NotReadyError, Supervisor } from "@graceful/http/restart";
 *
 * try {
 *   await new Supervisor({ command: ["deno", "run", "broken.ts"] }).start();
 * } catch (error) {
 *   if (error instanceof NotReadyError) console.error(error.message);
 * }
 * ```
 */
export class NotReadyError extends Error {
  /** Always `"NotReadyError"`. */
  override name = "NotReadyError";
}

/** The worker's last stderr lines, for an error report. */
export function lastLines(worker: Worker): string {
  const lines = worker.lastLines;
  return lines.length
    ? `; its last stderr lines:\n  ${lines.join("\n  ")}`
    : "";
}

/** Reads `net.ipv4.tcp_migrate_req`: "1", "0", or undefined if unknown. */
export function readMigrateReq(): string | undefined {
  const file = "/proc/sys/net/ipv4/tcp_migrate_req";
  try {
    return Deno.readTextFileSync(file).trim();
  } catch {
    // Deno wants --allow-all for /proc/sys; the supervisor can run `cat`.
  }
  try {
    const out = new Deno.Command("cat", { args: [file], stderr: "null" })
      .outputSync();
    return out.success
      ? new TextDecoder().decode(out.stdout).trim()
      : undefined;
  } catch {
    return undefined;
  }
}

/** The supervisor's line for a worst exit other than 0. */
export function worstLine(
  worst: { code: number; pid?: number; generation?: number },
): string {
  const meaning = EXIT_MEANINGS[worst.code];
  return `worker pid ${worst.pid} (generation ${worst.generation}) did not drain cleanly (exit code ${worst.code}${
    meaning ? `: ${meaning}` : ""
  }): the supervisor exits with ${worst.code}`;
}

/** Why a new worker was not ready: its exit, or the time it was given. */
export function notReadyWhy(
  pid: number,
  outcome: "timeout" | Deno.CommandStatus,
  readyTimeout: number,
): string {
  return outcome === "timeout"
    ? `worker pid ${pid} not ready within ${readyTimeout} ms (it must call serve() from @graceful/http, or run under its auto preload for a plain Deno.serve, with ${WORKER_FLAGS})`
    : `worker pid ${pid} ${describeExit(outcome)} before it was ready`;
}

/** The line of a restart rolled back, naming every serving pid. */
export function rolledBackLine(
  generation: number,
  why: string,
  serving: readonly Worker[],
): string {
  return `generation ${generation} failed, rolled back: ${why}; serving: ${
    serving.map((w) => `pid ${w.pid} (generation ${w.generation})`).join(", ")
  }; waiting for the next restart signal`;
}

/** The line of a worker that stopped answering the supervisor's pings. */
export function wedgedLine(
  worker: Worker,
  silentMs: number,
  bound: number,
): string {
  return `worker pid ${worker.pid} (generation ${worker.generation}) has not answered for ${silentMs} ms (--heartbeat ${bound}): wedged; replacing it`;
}

/** The line of a serving worker that died, and when it is replaced. */
export function crashedLine(
  worker: Worker,
  status: Deno.CommandStatus,
  uptime: number,
  delay: number,
): string {
  return `worker pid ${worker.pid} (generation ${worker.generation}) ${
    describeExit(status)
  } after ${Math.round(uptime)} ms: crashed; replacing it in ${delay} ms`;
}

/** Why a restart rolled back when its new worker died in the window. */
export function diedInWindow(
  fresh: Worker,
  status: Deno.CommandStatus,
): string {
  return `worker pid ${fresh.pid} ${describeExit(status)} ${
    Math.round(performance.now() - fresh.started)
  } ms after start, during the old worker's pre-drain${lastLines(fresh)}`;
}

/** A new worker's ready line. */
export function readyLine(worker: Worker): string {
  return `worker pid ${worker.pid} (generation ${worker.generation}) ready in ${
    since(worker.started)
  } ms`;
}

/** The line of a restart done: every new pid. */
export function servingLine(
  generation: number,
  ms: number,
  pids: number[],
): string {
  return `generation ${generation} serving in ${ms} ms (pids ${
    pids.join(", ")
  })`;
}
