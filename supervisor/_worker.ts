/**
 * One worker process of the supervisor: spawns the command with the
 * protocol's pipe on stdin, forwards its stdout and stderr (keeping the
 * last stderr lines, bounded, for error reports), spots its ready report,
 * and signals only processes it has verified.
 */
import {
  type Command,
  commandLine,
  MAX_LINE,
  nonce,
  parseReport,
  PROTOCOL,
  redact,
  reportAt,
  SUPERVISOR_ENV,
} from "./_protocol.ts";
import { timer } from "../lifecycle/_timer.ts";
import { stderr } from "../lifecycle/_stderr.ts";
import { type Logger, since } from "../lifecycle/_log.ts";
import { describeExit, NotReadyError } from "./_reports.ts";
import { descendsFrom } from "./_process_tree.ts";
import type { EnvFile } from "./_env_file.ts";

/** How many stderr lines a worker keeps for a rollback report. */
const KEEP_LINES = 10;
/** How much of each kept line (characters). */
const KEEP_CHARS = 500;
/** A partial stderr line longer than this is forwarded without waiting for its end. */
const MAX_PARTIAL = 64 * 1024;
/** After the process exits, how long its last stderr may take to arrive. */
const STDERR_GRACE_MS = 200;

const encoder = new TextEncoder();

/** A running worker process. */
export class Worker {
  readonly generation: number;
  readonly child: Deno.ChildProcess;
  readonly started: number = performance.now();
  /** Resolves with the exit status when the process ends. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Resolves with the server's pid when the worker reports ready. */
  readonly ready: Promise<number>;
  /** The server's pid, once reported and verified. */
  serverPid: number | undefined;
  /** Set when the supervisor asked it to drain or stop. */
  retiring = false;
  /** `performance.now()` of its last sign of life (its answer to `ping`). */
  lastAlive: number = performance.now();
  #secret = nonce();
  #lines: string[] = [];
  #ready = Promise.withResolvers<number>();
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #writes: Promise<unknown> = Promise.resolve();
  #gone = false;
  #onQuiet: (() => void) | undefined;

  constructor(
    command: string[],
    generation: number,
    env: Record<string, string> = {},
  ) {
    this.generation = generation;
    this.ready = this.#ready.promise;
    this.ready.catch(() => {});
    this.child = new Deno.Command(command[0], {
      args: command.slice(1),
      env: { ...env, [SUPERVISOR_ENV]: PROTOCOL },
      stdin: "piped",
      stdout: "inherit",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.child.stdin.getWriter();
    this.#stdin.closed.catch(() => {});
    this.send({ kind: "hello", nonce: this.#secret });
    const forwarded = this.#forward(this.child.stderr).catch(() => {});
    // The exit is the process's: a grandchild that keeps stderr open must
    // not hold it up (its last lines get a moment to arrive).
    this.exited = this.child.status.then(async (status) => {
      this.#gone = true;
      const grace = timer(STDERR_GRACE_MS, undefined);
      await Promise.race([forwarded, grace.promise]);
      grace.clear();
      this.#ready.reject(new Error("exited"));
      this.#stdin.close().catch(() => {});
      return status;
    });
  }

  /** True once the process has exited. */
  get gone(): boolean {
    return this.#gone;
  }

  /** The pid to report: the server's own if it said so, else the child's. */
  get pid(): number {
    return this.serverPid ?? this.child.pid;
  }

  /** The last lines the worker wrote to stderr (each cut to 500 characters). */
  get lastLines(): string[] {
    return this.#lines;
  }

  /**
   * Resolves when the worker next reports its pre-drain quiet (see
   * `_protocol.ts`); never, if it cannot tell or does not get there.
   */
  whenQuiet(): Promise<"quiet"> {
    const { promise, resolve } = Promise.withResolvers<"quiet">();
    this.#onQuiet = () => resolve("quiet");
    return promise;
  }

  /** Sends one command on the worker's stdin; a worker that has gone is ignored. */
  send(command: Command): void {
    if (this.#gone) return;
    const line = encoder.encode(commandLine(command));
    this.#writes = this.#writes.then(() => this.#stdin.write(line)).catch(
      () => {},
    );
  }

  /**
   * Spawns `command` as a worker of `generation`, with `envFile`'s variables
   * for that generation on top of the supervisor's environment; a bad env
   * file, or a command that cannot start, throws a {@linkcode NotReadyError}
   * naming it.
   */
  static spawn(
    command: string[],
    generation: number,
    envFile?: EnvFile,
  ): Worker {
    const vars = envFile?.forGeneration(generation);
    try {
      return new Worker(command, generation, vars);
    } catch (error) {
      throw new NotReadyError(
        `cannot start ${JSON.stringify(command[0])}: ${
          (error as Error).message
        }`,
      );
    }
  }

  /** Its ready report within `ms`: `"ready"`, `"timeout"`, or its exit. */
  async readyWithin(
    ms: number,
  ): Promise<"ready" | "timeout" | Deno.CommandStatus> {
    const limit = timer(ms, "timeout" as const);
    const outcome = await Promise.race([
      this.ready.then(() => "ready" as const, () => this.exited),
      this.exited,
      limit.promise,
    ]);
    limit.clear();
    return outcome;
  }

  /**
   * The rollback window of a restart: this new worker has taken over from
   * `old`, which pre-drains. `"committed"` after `preDrain` ms, or
   * `"quiet"` once `old` reports quiet (see `_census.ts`; then it is told
   * to commit), not before `rollbackWindow` ms; this worker's exit status
   * if it dies first (the caller rolls back).
   */
  async takeOver(
    old: Worker,
    preDrain: number,
    rollbackWindow: number,
    logger: Logger,
  ): Promise<"committed" | "quiet" | Deno.CommandStatus> {
    const start = performance.now();
    const window = timer(preDrain, "committed" as const);
    const least = timer(rollbackWindow, undefined);
    const outcome = await Promise.race([
      this.exited,
      window.promise,
      old.whenQuiet().then(() => least.promise).then(() => "quiet" as const),
    ]);
    window.clear();
    least.clear();
    if (outcome === "quiet") {
      old.send({ kind: "commit" });
      logger.info(
        `worker pid ${old.pid} (generation ${old.generation}) quiet ${
          since(start)
        } ms into its pre-drain: committed`,
      );
    }
    return outcome;
  }

  /**
   * Asks the worker to drain (a restart: a pre-drain of at most `preDrain`
   * ms first, `detach` its listener after it) or to stop, once; kills it if
   * it is still running `stopTimeout` ms after. Resolves once it is gone
   * or killed. A worker resumed meanwhile (`retiring` false) is left alone.
   */
  async retire(
    how: "drain" | "stop",
    { preDrain, detach, stopTimeout }: {
      preDrain: number;
      detach: boolean;
      stopTimeout: number;
    },
    logger: Logger,
  ): Promise<void> {
    if (!this.retiring) {
      this.retiring = true;
      const start = performance.now();
      this.send(
        how === "drain"
          ? { kind: "drain", delay: preDrain, detach }
          : { kind: "stop" },
      );
      logger.info(
        how === "drain"
          ? `worker pid ${this.pid} (generation ${this.generation}): pre-drain (at most ${preDrain} ms), then drain`
          : `worker pid ${this.pid}: stop`,
      );
      this.exited.then((status) => {
        if (!this.retiring) return; // resumed: it serves again
        logger.info(
          `worker pid ${this.pid} (generation ${this.generation}) ${
            describeExit(status)
          } after ${since(start)} ms of draining`,
        );
      });
    }
    const limit = timer(stopTimeout, "timeout" as const);
    const outcome = await Promise.race([this.exited, limit.promise]);
    limit.clear();
    if (outcome === "timeout" && this.retiring) {
      logger.error(
        `worker pid ${this.pid} still running ${stopTimeout} ms after ${how}: killing it`,
      );
      await this.killNow();
    }
  }

  /** Back to serving after a pre-drain (`steered`: it was steered away). */
  resume(steered: boolean): void {
    this.retiring = false;
    this.send({ kind: "resume" });
    if (steered) this.send({ kind: "unsteer" });
  }

  /** Kills the worker (SIGKILL) and waits for its exit. */
  async killNow(): Promise<void> {
    this.retiring = true;
    this.kill("SIGKILL");
    await this.exited;
  }

  /**
   * Signals the child and, behind a wrapper, the verified server. Never a
   * process the supervisor has not started or verified.
   */
  kill(signal: Deno.Signal): void {
    for (const pid of new Set([this.child.pid, this.serverPid])) {
      if (pid === undefined || pid < 2) continue;
      try {
        Deno.kill(pid, signal);
      } catch {
        // gone already
      }
    }
  }

  /** Forwards stderr line by line, taking out the ready report. */
  async #forward(stream: ReadableStream<Uint8Array>) {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of stream) {
      partial += decoder.decode(chunk, { stream: true });
      const lines = partial.split("\n");
      partial = lines.pop()!;
      for (const line of lines) this.#line(line);
      if (partial.length > MAX_PARTIAL) {
        // Keep a line's worth: a report may be arriving at its end.
        const out = partial.slice(0, -MAX_LINE);
        stderr.write(out);
        this.#keep(out);
        partial = partial.slice(-MAX_LINE);
      }
    }
    if (partial) this.#line(partial);
  }

  #line(line: string) {
    const at = reportAt(line);
    if (at > 0) {
      // The app's unterminated text before a report: a line of its own.
      this.#line(line.slice(0, at));
      line = line.slice(at);
    }
    const report = parseReport(line, this.#secret);
    if (!report) {
      stderr.write(line + "\n");
      this.#keep(line);
    } else if (report.kind === "alive" && report.ours) {
      this.lastAlive = performance.now();
    } else if (report.kind === "quiet" && report.ours) {
      this.#onQuiet?.();
      this.#onQuiet = undefined;
    } else if (report.kind === "ready") {
      const pid = report.pid;
      if (pid !== undefined && descendsFrom(pid, this.child.pid)) {
        this.serverPid ??= pid;
        this.lastAlive = performance.now();
        this.#ready.resolve(pid);
      } else {
        this.#keep(
          `(ignored a ready report that was not this worker's: ${
            redact(line.slice(0, 80))
          })`,
        );
      }
    }
  }

  #keep(line: string) {
    this.#lines.push(
      line.length > KEEP_CHARS ? `${line.slice(0, KEEP_CHARS)}…` : line,
    );
    if (this.#lines.length > KEEP_LINES) this.#lines.shift();
  }
}
