/**
 * The worker side of the restart supervisor (`restart.ts`): it knows it is
 * supervised from one environment variable, binds with `reusePort`, reports
 * ready on stderr once listening, and takes commands on stdin (see
 * `_protocol.ts`). If stdin ends (the supervisor died, even by SIGKILL), the
 * worker drains and exits: no orphan keeps the port.
 */
import { grantedEnv } from "../lifecycle/_env_var.ts";
import type { Logger } from "../lifecycle/_log.ts";
import {
  type Command,
  MAX_LINE,
  parseCommand,
  PROTOCOL,
  reportLine,
  SUPERVISOR_ENV,
} from "./_protocol.ts";
import { holdTimerWarmUp, timer } from "../lifecycle/_timer.ts";
import { exitAtStart, stderr } from "../lifecycle/_stderr.ts";
import type { DrainContext } from "../shutdown.ts";

/** How often the pre-drain looks for the moment it may end. */
const QUIET_POLL_MS = 10;
/**
 * It never ends before this: a SYN that reached this worker just before the
 * steer completes its handshake in an RTT, unseen by the census until then.
 */
const QUIET_MIN_MS = 25;

/**
 * Writes a protocol line for the supervisor on stderr, in order with the
 * log lines and never dropped (the supervisor always reads its workers).
 */
function report(line: string): void {
  stderr.write(line, true);
}

/** Exit status when a supervised worker cannot use `reusePort`. */
const EXIT_NO_REUSEPORT = 78;
/** Exit status when `GRACEFUL_SUPERVISOR` holds something else. */
const EXIT_BAD_ENV = 2;

/** What the link drives: each server of the worker. */
export interface DrainTarget {
  /** Drains (the whole lifecycle, or the lone server). */
  drain(context: DrainContext): Promise<unknown>;
  /**
   * Enters (`true`) or leaves (`false`) the pre-drain: health path 503 and
   * `Connection: close` on every response, still serving.
   */
  preDrain(on: boolean): void;
  /**
   * During the pre-drain: true once no client can send a request that has
   * not been told `Connection: close`; `undefined` if it cannot tell.
   */
  quiet(): boolean | undefined;
  /**
   * Sends the port's new connections to the other members of its reuseport
   * group (`exclude`: this worker's index of `count`), or (`undefined`)
   * back to the kernel's hash. See `_steer.ts`.
   */
  steer(away?: { exclude: number; count: number }): void;
}

/** True when the unstable net APIs (`reusePort`) are enabled. */
function hasReusePort(): boolean {
  return typeof (Deno as unknown as Record<string, unknown>).listenDatagram ===
    "function";
}

/** Reads lines from stdin, each at most MAX_LINE long (longer ones dropped). */
async function* lines(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  let skipping = false;
  while (true) {
    const { done, value: chunk } = await reader.read();
    if (done) return;
    buffered += decoder.decode(chunk, { stream: true });
    let at: number;
    while ((at = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      if (!skipping) yield line;
      skipping = false;
    }
    if (buffered.length > MAX_LINE) {
      buffered = "";
      skipping = true;
    }
  }
}

class Link {
  #targets = new Set<DrainTarget>();
  #logger: Logger;
  #secret = Promise.withResolvers<string>();
  #reading = false;
  #stdin: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #reported = false;
  /** Resolves once the ready report is written (see {@linkcode afterReady}). */
  #readyReported = Promise.withResolvers<void>();
  /** The apps' `readyWhen` of the servers registered. */
  #appReady: Promise<unknown>[] = [];
  #draining = false;
  /** Ends the pre-drain early (resume, stop or EOF). */
  #interrupt: ((command: Command | undefined) => void) | undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
    this.#secret.promise.catch(() => {});
    this.afterReady(holdTimerWarmUp());
  }

  /**
   * Runs `fn` once the ready report is written: start-up work the drain
   * needs but the restart must not wait for.
   */
  afterReady(fn: () => void): void {
    this.#readyReported.promise.then(fn);
  }

  /**
   * Registers a server and, the first time, starts the protocol. The ready
   * report waits for `appReady` (the app's `readyWhen`) of every server
   * registered by then; if one rejects, there is none.
   */
  ready(target: DrainTarget, appReady?: Promise<unknown>): void {
    this.#targets.add(target);
    if (appReady) {
      appReady.catch(() => {});
      this.#appReady.push(appReady);
    }
    if (this.#reading) return;
    this.#reading = true;
    // Restarts are the supervisor's job: a SIGHUP sent to the whole process
    // group (a terminal hang-up, `timeout`, `kill -HUP -PGID`) must not kill
    // the workers. These listeners stay until the worker exits.
    if (Deno.build.os !== "windows") {
      for (const name of ["SIGHUP", "SIGUSR2"] as const) {
        Deno.addSignalListener(name, () => {});
      }
    }
    this.#read().catch((error) => {
      this.#logger.error(`reading the supervisor's commands failed: ${error}`);
      this.#drainAll({ reason: "supervisor channel failed" });
    });
    this.#secret.promise.then(async (secret) => {
      await Promise.all(this.#appReady);
      if (this.#reported) return;
      this.#reported = true;
      report(reportLine("ready", secret, Deno.pid));
      this.#readyReported.resolve();
    }).catch(() => {});
  }

  async #read() {
    this.#stdin = Deno.stdin.readable.getReader();
    for await (const line of lines(this.#stdin)) {
      const command = parseCommand(line);
      if (!command) continue; // not for us: never acted on
      if (command.kind === "hello") {
        this.#secret.resolve(command.nonce);
      } else if (command.kind === "drain") {
        this.#preDrainThenDrain(command.delay, command.detach);
      } else if (command.kind === "steer") {
        for (const target of this.#targets) target.steer(command);
      } else if (command.kind === "unsteer") {
        for (const target of this.#targets) target.steer(undefined);
      } else if (command.kind === "ping") {
        // Answered from the event loop: a loop that is blocked says nothing.
        this.#secret.promise.then((secret) =>
          report(reportLine("alive", secret))
        );
      } else {
        this.#interrupt?.(command);
        if (command.kind === "stop") {
          this.#drainAll({ reason: "supervisor: stop" });
        }
      }
    }
    this.#secret.reject(new Error("stdin ended"));
    this.#interrupt?.(undefined);
    if (!this.#draining) {
      this.#logger.warn("supervisor gone (stdin closed): draining");
      this.#drainAll({ reason: "supervisor gone" });
    }
  }

  /**
   * The restart handoff: `Connection: close` and health 503 for `delay` ms
   * while the new generation takes over, then the drain. A `resume` in
   * between (the new generation died) returns to serving.
   */
  async #preDrainThenDrain(delay: number, detach: boolean) {
    if (this.#draining || this.#interrupt) return;
    for (const target of this.#targets) target.preDrain(true);
    const watching = new AbortController();
    const outcome = await new Promise<Command | undefined | "time" | "quiet">(
      (resolve) => {
        const id = setTimeout(() => resolve("time"), delay);
        const end = (value: Command | undefined | "quiet") => {
          clearTimeout(id);
          resolve(value);
        };
        const committed = Promise.withResolvers<void>();
        this.#interrupt = (command) => {
          // `commit`: the supervisor took the quiet report; the watch looks
          // again at once and ends the pre-drain at the first quiet look.
          if (command?.kind === "commit") committed.resolve();
          else end(command);
        };
        this.#watchQuiet(watching.signal, committed.promise, () => end("quiet"))
          .catch((error) =>
            this.#logger.error(`watching the pre-drain failed: ${error}`)
          );
      },
    );
    watching.abort();
    this.#interrupt = undefined;
    if (outcome !== undefined && outcome !== "time" && outcome !== "quiet") {
      if (outcome.kind === "resume") {
        this.#logger.info("supervisor: restart rolled back, serving again");
        for (const target of this.#targets) target.preDrain(false);
      }
      return; // stop drains by itself
    }
    this.#drainAll({
      reason: "supervisor: restart",
      drainDelay: 0,
      detachListener: detach,
    });
  }

  /**
   * Looks every {@linkcode QUIET_POLL_MS} whether every server is quiet;
   * on two looks in a row (after {@linkcode QUIET_MIN_MS}) it reports so to
   * the supervisor, once, and calls `done` on the first such look once the
   * supervisor has committed (looking at once at the commit). Says once why
   * not if a server cannot tell.
   */
  async #watchQuiet(
    signal: AbortSignal,
    commit: Promise<void>,
    done: () => void,
  ) {
    const secret = await this.#secret.promise;
    const start = performance.now();
    let before = false;
    let reported = false;
    let committed = false;
    commit.then(() => committed = true);
    while (!signal.aborted) {
      const tick = timer(QUIET_POLL_MS, undefined);
      await Promise.race([tick.promise, committed ? tick.promise : commit]);
      tick.clear();
      if (signal.aborted) return;
      const seen = [...this.#targets].map((t) => t.quiet());
      if (seen.includes(undefined)) {
        this.#logger.info(
          "pre-drain: runs its full time (ending it early needs Linux, TCP and --allow-ffi)",
        );
        return;
      }
      const now = seen.every((quiet) => quiet === true);
      const settled = now && before &&
        performance.now() - start >= QUIET_MIN_MS;
      before = now;
      if (!settled) continue;
      if (!reported) {
        reported = true;
        this.#logger.info(
          `pre-drain: quiet after ${
            Math.round(performance.now() - start)
          } ms (every connection left is busy with a request told Connection: close)`,
        );
        report(reportLine("quiet", secret));
      }
      if (committed) return done();
    }
  }

  #drainAll(context: DrainContext) {
    if (this.#draining) return;
    this.#draining = true;
    // Once drained, stop reading stdin: a pending read would keep a worker
    // whose servers do not exit by themselves (`exit: false`) alive.
    Promise.allSettled([...this.#targets].map((t) => t.drain(context)))
      .then(() => this.#stdin?.cancel().catch(() => {}));
  }
}

let link: Link | null | undefined;

/**
 * The process's link to a supervisor, or `undefined` when not supervised
 * (no variable, or no permission to read it). A supervised worker without
 * `--unstable-net` (binding would kill it with status 70, uncatchably), or
 * with a variable it does not understand, exits with one clear line.
 */
export function supervisor(logger: Logger): Link | undefined {
  if (link !== undefined) return link ?? undefined;
  const value = grantedEnv(SUPERVISOR_ENV);
  if (value === undefined || value === "") {
    link = null;
    return undefined;
  }
  // Fatal at start: straight to stderr (not through `logger`), so that the
  // exit cannot cut the line.
  if (value !== PROTOCOL) {
    exitAtStart(
      EXIT_BAD_ENV,
      `[graceful] ${SUPERVISOR_ENV}: expected "${PROTOCOL}" (set by restart.ts), got ${
        JSON.stringify(value.slice(0, 80))
      }`,
    );
  }
  if (Deno.build.os === "linux" && !hasReusePort()) {
    exitAtStart(
      EXIT_NO_REUSEPORT,
      "[graceful] this worker runs under the restart supervisor but reusePort is off: add --unstable-net to its deno command",
    );
  }
  link = new Link(logger);
  return link;
}
