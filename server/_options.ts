/**
 * Validation of `serve()`'s drain options (each bad value a `TypeError`
 * naming the option and the value) and their defaults.
 */
import { QUIET_MS, type SelfEndingDelay } from "./_drain_delay.ts";
import { badOption, describe } from "../lifecycle/_log.ts";
import { duration, MAX_TIMER_MS } from "../lifecycle/_timer.ts";
export { duration, MAX_TIMER_MS };

/** Validates an optional URL path option: a string starting with `/`. */
export function path(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !value.startsWith("/")) {
    throw badOption(name, 'a path starting with "/"', value);
  }
  return value;
}

/** A drain delay, validated: fixed (`quiet` undefined) or self-ending. */
export interface Delay {
  max: number;
  quiet: number | undefined;
}

/**
 * Validates `drainDelay`: a duration, or `{ max, quiet? }` (a delay that
 * ends by itself once the balancer has stopped sending).
 */
export function drainDelay(value: unknown): Delay {
  if (value === undefined || typeof value === "number") {
    return { max: duration("drainDelay", value, 0), quiet: undefined };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badOption(
      "drainDelay",
      "a number of milliseconds or { max, quiet }",
      value,
    );
  }
  const { max, quiet, ...rest } = value as SelfEndingDelay;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) {
    throw new TypeError(
      `drainDelay: unknown key ${
        JSON.stringify(unknown)
      } (expected max, quiet)`,
    );
  }
  if (max === undefined) {
    throw new TypeError(
      "drainDelay.max: required when drainDelay is an object",
    );
  }
  return {
    max: duration("drainDelay.max", max, 0),
    quiet: duration("drainDelay.quiet", quiet, QUIET_MS),
  };
}

/** Longest `Retry-After` accepted: a day, in seconds. */
export const MAX_RETRY_AFTER = 86_400;

/** The drain settings of `serve()`, validated, with their defaults. */
export interface DrainOptions {
  drainTimeout: number;
  drainDelay: Delay;
  healthPath: string | undefined;
  livenessPath: string | undefined;
  readyWhen: PromiseLike<unknown> | undefined;
  /** Which streaming bodies to make endable: event streams, all, or none. */
  endStreams: "events" | "all" | false;
  /** Seconds for `Retry-After` on the drain's 503s, or `false` for none. */
  retryAfter: number | false;
  gracePeriod: number | undefined;
}

/**
 * Validates the drain options of `serve()` (and `signal`); throws a
 * `TypeError` naming the first bad option and its value.
 */
export function drainOptions(options: {
  drainTimeout?: unknown;
  drainDelay?: unknown;
  healthPath?: unknown;
  livenessPath?: unknown;
  readyWhen?: unknown;
  endStreamsAtDeadline?: unknown;
  bodyBufferLimit?: unknown;
  retryAfter?: unknown;
  gracePeriod?: unknown;
  signal?: unknown;
}): DrainOptions {
  const drainTimeout = duration("drainTimeout", options.drainTimeout, 10_000);
  const delay = drainDelay(options.drainDelay);
  const retryAfter = options.retryAfter ?? 1;
  if (
    retryAfter !== false &&
    !(Number.isInteger(retryAfter) && (retryAfter as number) >= 0 &&
      (retryAfter as number) <= MAX_RETRY_AFTER)
  ) {
    throw badOption(
      "retryAfter",
      `false or whole seconds from 0 to ${MAX_RETRY_AFTER}`,
      retryAfter,
    );
  }
  const gracePeriod = options.gracePeriod === undefined
    ? undefined
    : duration("gracePeriod", options.gracePeriod, 0);
  if (options.bodyBufferLimit !== undefined) {
    throw new TypeError(
      `bodyBufferLimit: no longer an option (the drain reads no request body ahead: docs/request-bodies.md), got ${
        describe(options.bodyBufferLimit)
      }`,
    );
  }
  const healthPath = path("healthPath", options.healthPath);
  const livenessPath = path("livenessPath", options.livenessPath);
  if (livenessPath !== undefined && livenessPath === healthPath) {
    throw badOption(
      "livenessPath",
      "another path than healthPath",
      livenessPath,
    );
  }
  const ready = options.readyWhen;
  if (
    ready !== undefined &&
    typeof (ready as PromiseLike<unknown> | null)?.then !== "function"
  ) {
    throw badOption("readyWhen", "a promise", ready);
  }
  const ends = options.endStreamsAtDeadline ?? "events";
  if (typeof ends !== "boolean" && ends !== "events") {
    throw badOption("endStreamsAtDeadline", '"events", true or false', ends);
  }
  const endStreams = ends === true ? "all" : ends;
  if (
    options.signal !== undefined && !(options.signal instanceof AbortSignal)
  ) {
    throw badOption("signal", "an AbortSignal", options.signal);
  }
  return {
    drainTimeout,
    drainDelay: delay,
    healthPath,
    livenessPath,
    readyWhen: ready as PromiseLike<unknown> | undefined,
    endStreams,
    retryAfter: retryAfter as number | false,
    gracePeriod,
  };
}
