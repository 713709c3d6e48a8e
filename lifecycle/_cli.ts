/**
 * One command-line parser for this module's programs (the demo, the restart
 * supervisor, the `serve_default` runner), on `parseArgs` from `node:util`:
 * strict (an unknown option is an error), every message one line naming the
 * flag, numbers as plain decimals within what the platform holds.
 */
import { parseArgs } from "node:util";
export { MAX_TIMER_MS } from "./_timer.ts";

/** What a flag takes: a value, or nothing (a switch). */
export type FlagSpec = Record<string, { type: "string" | "boolean" }>;

/** Parsed flags and the words that were not flags. */
export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Parses `args` against `flags`; throws an `Error` whose message is one line
 * naming the offending flag (`unknown option "--foo"`, `--port needs a value`).
 */
export function parseFlags(args: string[], flags: FlagSpec): Parsed {
  try {
    return parseArgs({
      args,
      options: flags,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      const flag = message.match(/'([^']+)'/)?.[1] ?? message;
      throw new Error(`unknown option ${JSON.stringify(flag)}`);
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      const flag = message.match(/'(--?[\w-]+)/)?.[1] ?? message;
      throw new Error(`${flag} needs a value`);
    }
    throw error;
  }
}

/**
 * Reads a whole number written in plain decimal digits (no sign, `0x`,
 * exponent or blanks) within `min`–`max`; throws one line naming `name`.
 */
export function wholeNumber(
  name: string,
  raw: string,
  min: number,
  max: number,
): number {
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) {
    throw new Error(
      `${name}: expected a whole number from ${min} to ${max}, got ${
        JSON.stringify(raw)
      }`,
    );
  }
  return n;
}
