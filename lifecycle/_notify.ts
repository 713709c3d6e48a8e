/**
 * systemd's notify protocol (`sd_notify`) for the supervisor: `READY=1`
 * once serving, `RELOADING=1` (with `MONOTONIC_USEC`) then `READY=1` around
 * a restart, `STOPPING=1` at the stop, and `WATCHDOG=1` pings when the unit
 * asks for them. Sent through `systemd-notify` (Deno has no Unix datagram
 * client without `--unstable-net`), each bounded to 2 s. Active only where
 * `NOTIFY_SOCKET` is set and readable (`--allow-env=NOTIFY_SOCKET,
 * WATCHDOG_USEC`). Systemd accepts the messages of this helper process
 * only with `NotifyAccess=all`.
 *
 * A `serve()` process on its own sends `READY=1` once listening and
 * `STOPPING=1` when its drain starts, where it may run `systemd-notify`
 * (`--allow-run=systemd-notify`); without, one line says systemd is not
 * told. It does not tell systemd anything a failed message meant.
 */
import type { Logger } from "./_log.ts";
import { grantedEnv } from "./_env_var.ts";

/** Longest a `systemd-notify` call may take. */
const NOTIFY_MS = 2000;

/**
 * Microseconds since boot from `/proc/uptime` (read by `cat`: Deno wants
 * `--allow-all` for `/proc`). It is `CLOCK_BOOTTIME`, equal to systemd's
 * `CLOCK_MONOTONIC` unless the machine has been suspended.
 */
async function monotonicUsec(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("cat", {
      args: ["/proc/uptime"],
      stderr: "null",
      signal: AbortSignal.timeout(NOTIFY_MS),
    }).output();
    const seconds = Number(new TextDecoder().decode(out.stdout).split(" ")[0]);
    return out.success && seconds > 0
      ? String(Math.round(seconds * 1e6))
      : undefined;
  } catch {
    return undefined;
  }
}

/** Talks to systemd, if it listens. */
export class Notifier {
  #logger: Logger;
  #said = false;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  /** The messages in flight, in order (one process at a time). */
  #queue: Promise<void> = Promise.resolve();

  private constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** A notifier where `NOTIFY_SOCKET` is set and readable, else none. */
  static fromEnv(logger: Logger): Notifier | undefined {
    if (!grantedEnv("NOTIFY_SOCKET")) return undefined;
    const notifier = new Notifier(logger);
    const usec = Number(grantedEnv("WATCHDOG_USEC"));
    if (Number.isInteger(usec) && usec > 0) {
      const every = Math.max(100, Math.floor(usec / 2000));
      notifier.#watchdog = setInterval(
        () => notifier.send("WATCHDOG=1"),
        every,
      );
      Deno.unrefTimer(notifier.#watchdog);
    }
    return notifier;
  }

  /** Serving: `READY=1` and a status line. */
  ready(status: string): Promise<void> {
    return this.send("READY=1", `STATUS=${status}`);
  }

  /** A restart begins. */
  reloading(): Promise<void> {
    const usec = monotonicUsec();
    this.#queue = this.#queue.then(async () => {
      const at = await usec;
      await this.#run([
        "RELOADING=1",
        ...(at ? [`MONOTONIC_USEC=${at}`] : []),
        "STATUS=restarting",
      ]);
    });
    return this.#queue;
  }

  /** The stop begins; no more watchdog pings. */
  stopping(): Promise<void> {
    clearInterval(this.#watchdog);
    return this.send("STOPPING=1", "STATUS=stopping");
  }

  /** Sends `fields` as one message, after those before it. */
  send(...fields: string[]): Promise<void> {
    this.#queue = this.#queue.then(() => this.#run(fields));
    return this.#queue;
  }

  async #run(fields: string[]) {
    try {
      const out = await new Deno.Command("systemd-notify", {
        args: ["--no-block", `--pid=${Deno.pid}`, ...fields],
        stdout: "null",
        stderr: "piped",
        signal: AbortSignal.timeout(NOTIFY_MS),
      }).output();
      if (out.success) return;
      this.#once(
        `systemd-notify ${fields[0]} failed (${out.code}): ${
          new TextDecoder().decode(out.stderr).trim()
        }`,
      );
    } catch (error) {
      this.#once(
        `cannot tell systemd (${fields[0]}): ${(error as Error).message}`,
      );
    }
  }

  #once(line: string) {
    if (this.#said) return;
    this.#said = true;
    this.#logger.warn(`${line} (said once)`);
  }
}
