/** One graceful server, from `Deno.serve` to the end of its drain. */
import {
  badOption,
  describe,
  describeAddr,
  type Logger,
  resolveLogger,
} from "../lifecycle/_log.ts";
import { type Delay, drainOptions } from "./_options.ts";
import { checkRuntime } from "../lifecycle/_deno_check.ts";
import { sayLauncher } from "../lifecycle/_launcher.ts";
import { Notifier } from "../lifecycle/_notify.ts";
import { bodiesNeedHold } from "./_body_hold.ts";
import { closeEarly, type DrainHost, runDrain } from "./_drain.ts";
import type {
  DrainResult,
  GracefulHandler,
  GracefulServer,
  ServeOptions,
} from "./_server_types.ts";
import { Listeners } from "../supervisor/_detach.ts";
import { holdTimerWarmUp } from "../lifecycle/_timer.ts";
import { census } from "../supervisor/_census.ts";
import { steerAway, unsteer } from "../supervisor/_steer.ts";
import { supervisor } from "../supervisor/_supervised.ts";
import { Traffic } from "./_traffic.ts";
import {
  type DrainContext,
  type Hook,
  type HookOptions,
  Shutdown,
} from "../shutdown.ts";

/** Deno's own `serve`, taken before the `auto` preload replaces it. */
const denoServe = Deno.serve;

/** One graceful server, from `Deno.serve` to the end of its drain. */
export class Server implements GracefulServer {
  #drainTimeout: number;
  /** Which streams are tracked (the others are not counted in flight). */
  #streamsCounted: "events" | "all" | false;
  #drainDelay: Delay;
  #logger: Logger;
  #controller = new AbortController();
  #traffic: Traffic;
  #http: Deno.HttpServer<Deno.NetAddr>;
  #result: Promise<DrainResult> | undefined;
  #ownsLifecycle: boolean;
  #detached = false;
  #closed = Promise.withResolvers<void>();
  #finished: Promise<void>;
  /** systemd's notify socket, for a server on its own under systemd. */
  #notifier: Notifier | undefined;
  /** What the drain sequence (`_drain.ts`) sees of this server. */
  #host: DrainHost;
  readonly lifecycle: Shutdown | undefined;

  constructor(options: ServeOptions, handler: GracefulHandler) {
    const {
      drainTimeout,
      drainDelay,
      healthPath,
      livenessPath,
      readyWhen,
      endStreams,
      retryAfter,
      gracePeriod,
    } = drainOptions(options);
    this.#drainTimeout = drainTimeout;
    this.#streamsCounted = endStreams;
    this.#drainDelay = drainDelay;
    const {
      shutdown,
      signals,
      hooksTimeout,
      drainOnCrash,
      exit,
      logger,
      drainTimeout: _t,
      drainDelay: _d,
      healthPath: _h,
      livenessPath: _l,
      readyWhen: _w,
      endStreamsAtDeadline: _e,
      retryAfter: _r,
      gracePeriod: _g,
      signal,
      ...denoOptions
    } = options;
    if (
      shutdown !== undefined && shutdown !== false &&
      !(shutdown instanceof Shutdown)
    ) {
      throw badOption("shutdown", "a Shutdown or false", shutdown);
    }
    if (shutdown !== undefined) {
      // Settings of the Shutdown serve() would make: dropped beside one.
      const given = { signals, hooksTimeout, exit, logger, drainOnCrash };
      for (const [name, value] of Object.entries(given)) {
        if (value === undefined || (name === "logger" && shutdown === false)) {
          continue;
        }
        throw new TypeError(
          `${name}: has no effect beside shutdown: ${
            shutdown === false ? "false" : "a Shutdown"
          } (${
            shutdown === false
              ? "no signal is listened to and nothing exits"
              : `set it on the Shutdown`
          }), got ${describe(value)}`,
        );
      }
    }
    this.#ownsLifecycle = shutdown === undefined;
    this.lifecycle = shutdown === false ? undefined : shutdown ??
      new Shutdown({ signals, hooksTimeout, exit, logger, drainOnCrash });
    this.#logger = this.lifecycle?.logger ?? resolveLogger(logger);
    if (gracePeriod !== undefined) {
      const hooks = this.lifecycle?.hooksTimeout ?? 0;
      const total = drainDelay.max + drainTimeout + hooks;
      if (total > gracePeriod) {
        this.#logger.warn(
          `drainDelay ${drainDelay.max} + drainTimeout ${drainTimeout} + hooksTimeout ${hooks} = ${total} ms exceeds the grace period of ${gracePeriod} ms: the platform may kill the process before the drain and its hooks end`,
        );
      }
    }
    this.#traffic = new Traffic({
      handler,
      onError: options.onError,
      healthPath,
      livenessPath,
      endStreams,
      holdBodies: bodiesNeedHold,
      retryAfter,
      signal: this.#controller.signal,
      logger: this.#logger,
    });
    const link = supervisor(this.#logger);
    // A worker looks at Deno's internals after its ready report (below).
    checkRuntime(this.#logger, { reliances: !link });
    // A supervised worker's launcher is the supervisor, which says its own.
    if (!link) {
      sayLauncher(
        this.#logger,
        drainDelay.max + drainTimeout + (this.lifecycle?.hooksTimeout ?? 0),
      );
      // Under systemd (Type=notify), a server on its own tells it too.
      this.#notifier = Notifier.fromEnv(this.#logger);
    }
    if (link && Deno.build.os === "linux") {
      (denoOptions as Deno.ServeTcpOptions).reusePort = true;
    }
    // Signals before requests: once `onListen` has announced the port, a
    // signal must find its listener. Timers after `Deno.serve` (`_timer.ts`).
    const warmUp = holdTimerWarmUp();
    this.lifecycle?.listen();
    try {
      this.#http = denoServe(
        denoOptions as Deno.ServeTcpOptions,
        this.#traffic.handle,
      );
    } catch (error) {
      if (this.#ownsLifecycle) this.lifecycle?.[Symbol.dispose]();
      const where = `${options.hostname ?? "0.0.0.0"}:${options.port ?? 8000}`;
      if (error instanceof Deno.errors.AddrInUse) {
        throw new Deno.errors.AddrInUse(
          `cannot listen on ${where}: address already in use`,
          { cause: error },
        );
      }
      // Other errors (a host name that does not resolve, no permission) get
      // the address in front, keeping their class.
      if (error instanceof Error && !error.message.includes(where)) {
        error.message = `cannot listen on ${where}: ${error.message}`;
      }
      throw error;
    } finally {
      warmUp();
    }
    // A detached listener fails Deno's accept loop (EINVAL, rejecting
    // `finished`): then the server is done when shutdown() resolves.
    this.#finished = this.#http.finished.catch(async (error) => {
      if (!this.#detached) throw error;
      await this.#closed.promise;
    });
    const http = this.#http;
    // At start, not at the signal (it would hold the event loop): the
    // listener's descriptor (--allow-ffi: a ~5 ms scan). A worker finds it and
    // checks Deno (~10 ms) after its ready report, which its restart awaits.
    const listeners = new Listeners(http.addr);
    if (!link) listeners.find();
    else {
      link.afterReady(() => {
        checkRuntime(this.#logger);
        listeners.find();
      });
    }
    this.#notifier?.ready(`serving on ${describeAddr(http.addr)}`);
    this.#host = {
      where: describeAddr(http.addr),
      traffic: this.#traffic,
      logger: this.#logger,
      drainTimeout: this.#drainTimeout,
      streamsCounted: this.#streamsCounted,
      finished: this.#finished,
      abort: (reason) => this.#controller.abort(reason),
      canDetach: () => listeners.found,
      queued: () => listeners.queued(),
      dropNew: () => void listeners.dropNew(),
      detach: () => {
        const detached = listeners.detach();
        if (detached > 0) this.#detached = true;
        return detached;
      },
      quiet: () => this.#quiet(),
      steered: () => this.#steered,
      closeListener: () => {
        http.shutdown().then(this.#closed.resolve, this.#closed.reject);
        return this.#closed.promise.catch(() => {});
      },
    };
    const closesEarly = (dryRun?: boolean) =>
      closeEarly(this.#host, this.#drainDelay, dryRun);
    if (!link) closesEarly(true); // compiled now, not at the signal
    this.lifecycle?.addDrainer((context) => this.#drain(context), {
      stopAccepting: link ? undefined : closesEarly,
    });
    const appReady = readyWhen && this.#readyWhen(readyWhen);
    appReady?.catch(() => {}); // said by #readyWhen
    link?.ready({
      drain: (context) =>
        this.lifecycle
          ? this.lifecycle.start(context.reason, context)
          : this.#drain(context),
      preDrain: (on) => {
        this.#traffic.preDrain(on);
        this.#logger.info(
          on
            ? `pre-drain on ${
              describeAddr(this.addr)
            }: Connection: close on every response`
            : `pre-drain on ${
              describeAddr(this.addr)
            } ended: serving as before`,
        );
      },
      steer: (away) => this.#steer(away),
      quiet: () => this.#quiet(),
    }, appReady);
    // An already aborted signal drains at once, as a later abort would.
    if (signal?.aborted) queueMicrotask(() => this.shutdown("signal aborted"));
    else {
      signal?.addEventListener("abort", () => this.shutdown("signal aborted"), {
        once: true,
      });
    }
  }

  get addr(): Deno.NetAddr {
    return this.#http.addr;
  }
  get finished(): Promise<void> {
    return this.#finished;
  }
  get draining(): boolean {
    return this.#traffic.draining;
  }
  get inFlight(): number {
    return this.#traffic.inFlight;
  }
  get signal(): AbortSignal {
    return this.#controller.signal;
  }
  get ready(): boolean {
    return this.#traffic.health.ready;
  }
  setReady(ready: boolean): void {
    if (typeof ready !== "boolean") {
      throw badOption("setReady", "true or false", ready);
    }
    this.#traffic.health.setReady(ready);
  }

  /** Not ready until `work` resolves; resolves then (rejects with it). */
  #readyWhen(work: PromiseLike<unknown>): Promise<void> {
    const start = performance.now();
    return this.#traffic.health.startUp(work).then(() => {
      this.#logger.info(
        `ready after ${Math.round(performance.now() - start)} ms (readyWhen)`,
      );
    }, (error) => {
      this.#logger.error(
        `not ready: readyWhen rejected: ${
          error instanceof Error ? error.message : String(error)
        }; the health path answers 503 until the process ends`,
      );
      throw error;
    });
  }

  shutdown(reason = "shutdown() called"): Promise<DrainResult> {
    const drained = this.#drain({ reason });
    const own = this.#ownsLifecycle ? this.lifecycle : undefined;
    // Its own lifecycle: the hooks run too (no exit), unless a signal
    // started it already (then it runs them, and exits as configured).
    this.#stopped ??= own && !own.started
      ? own.start(reason, { exit: false }).then(() => drained)
      : drained;
    return this.#stopped;
  }

  /** What shutdown() resolves with, once called. */
  #stopped: Promise<DrainResult> | undefined;

  onShutdown(fn: Hook, options?: HookOptions): () => void {
    if (!this.lifecycle) {
      throw new TypeError(
        "onShutdown: this server was created with shutdown: false",
      );
    }
    return this.lifecycle.onShutdown(fn, options);
  }

  ref(): void {
    this.#http.ref();
  }
  unref(): void {
    this.#http.unref();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown("disposed");
  }

  #drain(context: DrainContext): Promise<DrainResult> {
    if (this.#result) return this.#result;
    const drained = runDrain(
      this.#host,
      context.reason,
      context.drainDelay === undefined
        ? this.#drainDelay
        : { max: context.drainDelay, quiet: undefined },
      context.detachListener,
    );
    // systemd hears STOPPING=1 before the exit (at most 2 s later).
    const told = this.#notifier?.stopping();
    this.#result = told ? told.then(() => drained) : drained;
    return this.#result;
  }

  /** Whether steering failed once already (said once, then quiet). */
  #steerFailed = false;
  /** Whether new connections are steered away from this listener now. */
  #steered = false;

  /**
   * True when nothing is queued and every open connection is busy or was
   * told `Connection: close`; `undefined` when it cannot tell (`_census.ts`).
   */
  #quiet(): boolean | undefined {
    const addr = this.addr;
    if (addr.transport !== "tcp") return undefined;
    const found = census(addr);
    if (!found) return undefined;
    if (found.queued > 0) return false;
    if (found.open.length === 0) return true;
    const announced = this.#traffic.announcedPeers();
    return found.open.every((peer) => announced.has(peer));
  }

  /** See {@linkcode DrainTarget.steer}: one line says what happened. */
  #steer(away: { exclude: number; count: number } | undefined) {
    const where = describeAddr(this.addr);
    const failed = away
      ? steerAway(this.addr, away.exclude, away.count)
      : unsteer(this.addr);
    if (failed === undefined) {
      this.#steered = away !== undefined;
      this.#logger.info(
        away
          ? `steering new connections on ${where} to the other ${
            away.count - 1
          } listener(s) of the port (this one is ${away.exclude} of ${away.count})`
          : `steering on ${where} ended: the kernel spreads new connections again`,
      );
    } else if (away && !this.#steerFailed) {
      this.#steerFailed = true;
      this.#logger.warn(
        `cannot steer new connections away from ${where}: ${failed}; with tcp_migrate_req=0 the connections queued here when it closes are reset`,
      );
    }
  }
}
