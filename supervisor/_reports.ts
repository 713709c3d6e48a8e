/**
 * How the supervisor reports on its workers: an exit in words, the last
 * stderr lines of one that failed, the error of one that never became
 * ready, and the kernel setting it prints at start.
 */
import type { Worker } from "./_worker.ts";

export function describeExit(status: Deno.CommandStatus): string {
  return status.signal
    ? `was killed by ${status.signal}`
    : `exited with code ${status.code}`;
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
