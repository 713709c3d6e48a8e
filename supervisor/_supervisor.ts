/**
 * The restart supervisor's state machine. It owns the worker list: which
 * workers serve now, which are retiring. Every change to that list runs
 * through one queue, so two generations never start at once.
 */
import { type Logger, resolveLogger, since } from "../lifecycle/_log.ts";
import { timer } from "../lifecycle/_timer.ts";
import { Backoff } from "./_backoff.ts";
import { Group } from "./_group.ts";
import * as reports from "./_reports.ts";
import {
  type SupervisorOptions,
  type SupervisorSettings,
  supervisorSettings,
} from "./_supervisor_options.ts";
import { Worker } from "./_worker.ts";
import { heartbeat } from "./_heartbeat.ts";

/**
 * Runs N workers of one command on one port and replaces them without
 * downtime. Installs no signal listener (see `supervise()` for that). It does
 * not bind the port itself: each worker binds with `reusePort`.
 *
 * @example
 * ```ts ignore
 * import { Supervisor } from "@graceful/http/restart";
 *
 * const supervisor = new Supervisor({
 *   command: ["deno", "run", "-A", "--unstable-net", "server.ts"],
 * });
 * await supervisor.start();
 * await supervisor.restart("new release"); // resolves true if all replaced
 * await supervisor.stop();
 * ```
 */
export class Supervisor {
  /** The port's reuseport group, in the kernel's order (see `_group.ts`). */
  #group = new Group<Worker>();
  /** The crash delay of each slot (index in #serving). */
  #backoff: Backoff;
  /** The options, validated, with their defaults. */
  #settings: SupervisorSettings;
  #logger: Logger;
  #serving: Worker[] = [];
  #retiring = new Set<Worker>();
  #starting = new Set<Worker>();
  /** New workers ready, waiting for their slot in a restart. */
  #standby = new Set<Worker>();
  #generation = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #queuedRestart: Promise<boolean> | undefined;
  #stopping: Promise<void> | undefined;
  #stopped = Promise.withResolvers<void>();
  #exitCode = 0;
  /** Stops the pings (see `_heartbeat.ts`), once started. */
  #unbeat: (() => void) | undefined;
  /** `net.ipv4.tcp_migrate_req` as read once at construction, if readable. */
  readonly tcpMigrateReq: string | undefined = reports.readMigrateReq();
  /** Whether queued connections migrate to a sibling listener. */
  readonly migrates: boolean = this.tcpMigrateReq === "1";
  /** False where `reusePort` is unavailable: restarts stop, then start. */
  readonly overlap: boolean = Deno.build.os === "linux";

  /**
   * Validates the options; throws a `TypeError` naming a bad one. Creates
   * nothing: no process, no file, no socket.
   */
  constructor(options: SupervisorOptions) {
    const settings = this.#settings = supervisorSettings(options);
    this.#backoff = new Backoff(settings.crashBackoff, settings.stableAfter);
    this.#logger = resolveLogger(options.logger);
  }

  /** How long a stopping worker may take before it is killed (ms). */
  get stopTimeout(): number {
    return this.#settings.stopTimeout;
  }

  /** Pids of the workers serving now (not the retiring ones). */
  get pids(): number[] {
    return this.#serving.map((w) => w.pid);
  }

  /** The generation serving now (1 after start, +1 per successful restart). */
  get generation(): number {
    return this.#generation;
  }

  /** True once `stop()` has been called. */
  get stopping(): boolean {
    return this.#stopping !== undefined;
  }

  /**
   * After {@linkcode Supervisor.stopped}: 0 if every worker drained cleanly
   * at the stop, otherwise the worst of their exit codes (a forced or killed
   * exit, then 124 for requests cut at the deadline, then other errors,
   * then 1 for a failed hook). `restart.ts` exits with it.
   */
  get exitCode(): number {
    return this.#exitCode;
  }

  /** Resolves once `stop()` has finished: every worker has exited. */
  get stopped(): Promise<void> {
    return this.#stopped.promise;
  }

  /** Starts the workers; rejects (with nothing left running) if one fails. */
  start(): Promise<void> {
    return this.#exclusive(async () => {
      this.#generation = 1;
      this.#logger.info(
        `supervisor pid ${Deno.pid}: starting ${this.#settings.workers} worker(s): ${
          this.#settings.command.join(" ")
        }`,
      );
      try {
        for (let i = 0; i < this.#settings.workers; i++) {
          this.#serve(await this.#spawnReady(1), i);
        }
        if (this.#stopping) return;
        this.#unbeat = heartbeat(
          () => this.#serving,
          this.#settings.heartbeat,
          (w, ms) => this.#wedged(w, ms),
        );
      } catch (error) {
        // Stopping while a worker starts is no failure: stop() drains the
        // serving ones gracefully; never kill them here.
        if (this.#stopping) return;
        await Promise.all(this.#serving.map((w) => w.killNow()));
        this.#serving = [];
        throw error;
      }
    });
  }

  /**
   * Replaces every worker with a new generation: (on Linux) every new one
   * started and ready first, then each old one pre-drains and drains in
   * turn. A new worker that fails to start rolls the whole generation back;
   * one that dies in its slot's rollback window rolls back that slot and
   * the later ones. Calls made meanwhile are coalesced into one follow-up.
   * Resolves true if every worker was replaced.
   */
  restart(reason = "restart requested"): Promise<boolean> {
    if (this.#stopping) return Promise.resolve(false);
    if (this.#queuedRestart) {
      this.#logger.info(`${reason}: a restart is already queued, coalesced`);
      return this.#queuedRestart;
    }
    const queued = this.#exclusive(() => {
      this.#queuedRestart = undefined;
      return this.#restart(reason);
    });
    this.#queuedRestart = queued;
    return queued;
  }

  /**
   * Stops gracefully: every worker drains and exits. Idempotent. Workers
   * still running after `stopTimeout` are killed.
   */
  stop(reason = "stop requested"): Promise<void> {
    this.#stopping ??= (async () => {
      this.#unbeat?.();
      const all = [...this.#serving, ...this.#retiring, ...this.#standby];
      this.#logger.info(`${reason}: stopping ${all.length} worker(s)`);
      for (const w of this.#starting) w.kill("SIGTERM");
      // A worker that had died already (a crash being replaced) did not
      // drain: its exit is not the stop's.
      const draining = new Set(all.filter((w) => !w.gone));
      const exits = await Promise.all(all.map(async (w) => {
        await this.#retire(w, "stop");
        const code = reports.exitCodeOf(await w.exited);
        return { pid: w.pid, generation: w.generation, code, w };
      }));
      this.#serving = [];
      await this.#queue.catch(() => {});
      // Workers that were still starting when the stop came.
      await Promise.all([...this.#retiring].map((w) => w.exited));
      const worst = reports.worstExit(exits.filter((e) => draining.has(e.w)));
      this.#exitCode = worst.code;
      if (worst.code !== 0) this.#logger.error(reports.worstLine(worst));
      this.#logger.info("all workers stopped");
      this.#stopped.resolve();
    })();
    return this.#stopping;
  }

  /** Kills every worker at once (SIGKILL). */
  kill(): void {
    const all = [this.#serving, this.#retiring, this.#starting, this.#standby];
    for (const w of all.flatMap((set) => [...set])) w.kill("SIGKILL");
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #restart(reason: string): Promise<boolean> {
    if (this.#stopping) return false;
    const generation = this.#generation + 1;
    const start = performance.now();
    this.#logger.info(`${reason}: starting generation ${generation}`);
    // All or nothing at the start: where ports are shared, every new worker
    // is ready before any old one retires (#abandon stops them).
    const standby = this.#standby;
    try {
      for (const _ of this.overlap ? this.#serving : []) {
        standby.add(await this.#spawnReady(generation));
      }
    } catch (error) {
      return this.#abandon(generation, (error as Error).message);
    }
    // Each slot's steer replaces the program before; only the last is
    // detached: sent to another process, an unsteer could undo the next.
    let unsteer: Worker | undefined;
    try {
      if (!await this.#handOver(generation, standby, (w) => unsteer = w)) {
        return false;
      }
    } finally {
      unsteer?.send({ kind: "unsteer" });
    }
    this.#generation = generation;
    this.#logger.info(reports.servingLine(generation, since(start), this.pids));
    return true;
  }

  /** The slots, one at a time; false once rolled back. */
  async #handOver(
    generation: number,
    standby: Set<Worker>,
    steered: (fresh: Worker) => void,
  ): Promise<boolean> {
    for (let i = 0; i < this.#serving.length; i++) {
      if (this.#stopping) return false;
      const old = this.#serving[i];
      if (!this.overlap) await this.#retire(old, "stop");
      let fresh: Worker;
      try {
        fresh = [...standby][0] ?? await this.#spawnReady(generation);
        standby.delete(fresh);
      } catch (error) {
        return this.#abandon(generation, (error as Error).message);
      }
      if (!this.overlap) {
        this.#serve(fresh, i);
        continue;
      }
      // The rollback window: if the new one dies in it, the old one resumes.
      this.#serving[i] = fresh;
      const away = this.#settings.steer ? this.#group.awayFrom(old) : undefined;
      if (away) old.send({ kind: "steer", ...away });
      this.#retire(old, "drain");
      const outcome = await fresh.takeOver(
        old,
        this.#settings.preDrain,
        this.#settings.rollbackWindow,
        this.#logger,
      );
      if (outcome !== "committed" && outcome !== "quiet") {
        if (this.#stopping) return false;
        this.#retiring.delete(old);
        old.resume(away !== undefined);
        this.#serving[i] = old;
        return this.#abandon(generation, reports.diedInWindow(fresh, outcome));
      }
      this.#serve(fresh, i);
      if (away) {
        // The group's order must not change under a program naming indices.
        await old.exited;
        steered(fresh);
      }
    }
    return true;
  }

  /** Rolls back: says so, then stops the new workers still on standby. */
  async #abandon(generation: number, why: string): Promise<false> {
    if (!this.#stopping) {
      this.#logger.error(
        reports.rolledBackLine(generation, why, this.#serving),
      );
    }
    const standby = [...this.#standby];
    this.#standby.clear();
    await Promise.all(standby.map((w) => this.#retire(w, "stop")));
    return false;
  }

  /** Spawns a worker and waits for its ready report. */
  async #spawnReady(generation: number): Promise<Worker> {
    const { command, envFile, readyTimeout } = this.#settings;
    const worker = Worker.spawn(command, generation, envFile);
    this.#starting.add(worker);
    const outcome = await worker.readyWithin(readyTimeout);
    this.#starting.delete(worker);
    if (outcome === "ready" && this.#stopping) {
      await this.#retire(worker, "stop");
      throw new reports.NotReadyError("stopping");
    }
    if (outcome === "ready") {
      this.#group.join(worker);
      worker.exited.then(() => this.#group.leave(worker));
      this.#logger.info(reports.readyLine(worker));
      return worker;
    }
    const why = reports.notReadyWhy(worker.pid, outcome, readyTimeout);
    if (this.#stopping) {
      // stop() is ending it; its exit is all that is left to see.
      this.#retiring.add(worker);
      worker.kill("SIGTERM");
      worker.exited.then(() => this.#retiring.delete(worker));
    } else await worker.killNow();
    throw new reports.NotReadyError(why + reports.lastLines(worker));
  }

  /** Puts `worker` in slot `index`; if it dies there, it is replaced. */
  #serve(worker: Worker, index: number) {
    this.#serving[index] = worker;
    worker.exited.then((status) => {
      if (worker.retiring || this.#stopping) return;
      if (this.#serving[index] !== worker) return;
      this.#replace(worker, status, index, performance.now() - worker.started);
    });
  }

  /**
   * Replaces the dead `worker` in slot `index` after the slot's backoff
   * (reset once a worker there has lived a stable minute).
   */
  #replace(
    worker: Worker,
    status: Deno.CommandStatus,
    index: number,
    uptime: number,
  ) {
    const delay = this.#backoff.next(index, uptime);
    this.#logger.error(reports.crashedLine(worker, status, uptime, delay));
    // One that never served has no uptime: the slot's backoff keeps growing.
    this.#refill(worker, index, delay).then((ok) =>
      ok || this.#stopping || this.#replace(worker, status, index, 0)
    );
  }

  /**
   * After `delay` ms, a new worker in `worker`'s slot if it still holds it;
   * false if the new one could not start.
   */
  #refill(worker: Worker, index: number, delay = 0): Promise<boolean> {
    return this.#exclusive(async () => {
      await timer(delay, undefined).promise;
      if (this.#stopping || this.#serving[index] !== worker) return true;
      try {
        this.#serve(await this.#spawnReady(this.#generation), index);
        return true;
      } catch (error) {
        if (this.#stopping) return true;
        this.#logger.error(`replacement failed: ${(error as Error).message}`);
        return false;
      }
    });
  }

  /** A worker that stopped answering: a new one takes its slot, then it dies. */
  #wedged(worker: Worker, silentMs: number) {
    this.#logger.error(
      reports.wedgedLine(worker, silentMs, this.#settings.heartbeat),
    );
    const index = this.#serving.indexOf(worker);
    this.#refill(worker, index).then((ok) => {
      // Replaced: its exit is not a crash. Else killed all the same, then
      // replaced as a crashed worker is.
      if (ok) worker.retiring = true;
      worker.kill("SIGKILL");
    });
  }

  /** Asks a worker to drain (restart) or stop (`Worker.retire`). */
  #retire(worker: Worker, how: "drain" | "stop"): Promise<void> {
    this.#retiring.add(worker);
    if (!worker.retiring) {
      worker.exited.then(() => {
        if (worker.retiring) this.#retiring.delete(worker);
      });
    }
    return worker.retire(how, {
      preDrain: this.#settings.preDrain,
      // Detaching the listener only helps when the kernel migrates its
      // queue; with tcp_migrate_req=0 it would reset those connections.
      detach: this.migrates,
      stopTimeout: this.#settings.stopTimeout,
    }, this.#logger);
  }
}
