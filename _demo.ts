/**
 * The seed demo behind `deno run --allow-net server.ts`: `GET /` waits 3 s
 * and answers `hello world`; Ctrl+C lets it finish before the process exits.
 */
import { serve } from "./server.ts";

const USAGE =
  "usage: deno run --allow-net server.ts [--port N] [--host NAME] [--delay MS]";

interface DemoArgs {
  port: number;
  hostname: string;
  delay: number;
}

function parse(args: string[]): DemoArgs {
  const out: DemoArgs = { port: 8080, hostname: "0.0.0.0", delay: 3000 };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const [name, inline] = flag.split("=", 2);
    const value = inline ?? args[++i];
    if (value === undefined) throw new Error(`${name} needs a value\n${USAGE}`);
    if (name === "--host") {
      out.hostname = value;
    } else if (name === "--port" || name === "--delay") {
      const n = Number(value);
      const max = name === "--port" ? 65535 : Infinity;
      if (value.trim() === "" || !Number.isInteger(n) || n < 0 || n > max) {
        throw new Error(`${name}: expected a whole number, got "${value}"`);
      }
      if (name === "--port") out.port = n;
      else out.delay = n;
    } else {
      throw new Error(`unknown option "${flag}"\n${USAGE}`);
    }
  }
  return out;
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
    console.error(
      `server.ts: ${error instanceof Error ? error.message : error}`,
    );
    Deno.exit(error instanceof Deno.errors.AddrInUse ? 1 : 2);
  }
}
