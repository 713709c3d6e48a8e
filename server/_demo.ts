/**
 * The seed demo behind `deno run --allow-net server.ts`: `GET /` waits 3 s
 * and answers `hello world`; Ctrl+C lets it finish before the process exits.
 */
import { MAX_TIMER_MS, parseFlags, wholeNumber } from "../lifecycle/_cli.ts";
import { serve } from "./_serve.ts";

const USAGE =
  "usage: deno run --allow-net server.ts [--port N] [--host NAME] [--delay MS]";

interface DemoArgs {
  port: number;
  hostname: string;
  delay: number;
}

function parse(args: string[]): DemoArgs {
  const { values, positionals } = parseFlags(args, {
    port: { type: "string" },
    host: { type: "string" },
    delay: { type: "string" },
  });
  if (positionals.length > 0) {
    throw new Error(`unexpected argument ${JSON.stringify(positionals[0])}`);
  }
  const { port = "8080", host = "0.0.0.0", delay = "3000" } = values as Record<
    string,
    string | undefined
  >;
  if (host === "") throw new Error("--host needs a value");
  return {
    port: wholeNumber("--port", port, 0, 65535),
    hostname: host,
    delay: wholeNumber("--delay", delay, 0, MAX_TIMER_MS),
  };
}

/** Runs the demo; exits non-zero with one line on bad input or a busy port. */
export function main(args: string[]): void {
  try {
    const { port, hostname, delay } = parse(args);
    serve({
      port,
      hostname,
      onListen: ({ hostname, port }) =>
        console.log(`listening on http://${hostname}:${port}/`),
    }, async (request) => {
      console.log(
        `${request.method} ${
          new URL(request.url).pathname
        }: answering in ${delay} ms`,
      );
      await new Promise((resolve) => setTimeout(resolve, delay));
      return new Response("hello world\n");
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const usage = error instanceof Deno.errors.AddrInUse ? "" : `\n${USAGE}`;
    console.error(`server.ts: ${message}${usage}`);
    Deno.exit(error instanceof Deno.errors.AddrInUse ? 1 : 2);
  }
}
