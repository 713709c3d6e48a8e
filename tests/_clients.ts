/**
 * Client libraries we did not write, with their own connection pools and no
 * retry (tests/fixtures/clients/): Node's fetch (undici), Node's
 * `http.Agent({ keepAlive: true })`, Python's `requests` (Debian's
 * python3-requests) and Go's `net/http` default client (Debian's golang-go).
 * Each sends GETs or 4 KiB POSTs (the body checked by its SHA-256) at a fixed
 * rate until a stop file exists, then prints its counts.
 */
import { freePort, superviseScript } from "./_helpers.ts";

const CLIENTS = new URL("./fixtures/clients/", import.meta.url).pathname;

/** What a client process counted. */
export interface Counts {
  /** Requests started. */
  sent: number;
  /** 200 with the right body. */
  ok: number;
  /** Refused at connect (ECONNREFUSED): nothing was sent. */
  refused: number;
  /** Failed after sending (a reset, an early close, a wrong answer). */
  failed: number;
  /** The first few failures' causes. */
  samples: string[];
}

/** Go's client, built once per run (a cold `go run` compiles net/http). */
let goBinary: Promise<string> | undefined;
function buildGo(): Promise<string> {
  goBinary ??= (async () => {
    const out = `${await Deno.makeTempDir()}/go_http`;
    const built = await new Deno.Command("go", {
      args: ["build", "-o", out, "go_http.go"],
      cwd: CLIENTS,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!built.success) {
      throw new Error(
        `go build failed (CI installs golang-go): ${
          new TextDecoder().decode(built.stderr)
        }`,
      );
    }
    return out;
  })();
  return goBinary;
}

/** The settings a client takes (one JSON argument). */
export interface ClientArgs {
  url: string;
  /** Requests per second. */
  rate: number;
  /** Longest run (ms). */
  ms: number;
  post: boolean;
  /** The client stops once this file exists. */
  stopFile: string;
}

/** Each client's command line for `args`. */
export const CLIENT_KINDS: Record<
  string,
  (args: ClientArgs) => Promise<string[]>
> = {
  "Node fetch (undici)": (args) =>
    Promise.resolve([
      "node",
      `${CLIENTS}node_fetch.mjs`,
      JSON.stringify(args),
    ]),
  "Node http.Agent keepAlive": (args) =>
    Promise.resolve([
      "node",
      `${CLIENTS}node_fetch.mjs`,
      JSON.stringify({ ...args, agent: true }),
    ]),
  "Python requests": (args) =>
    Promise.resolve([
      "/usr/bin/python3",
      `${CLIENTS}python_requests.py`,
      JSON.stringify(args),
    ]),
  "Go net/http": async (args) => [await buildGo(), JSON.stringify(args)],
};

/** Runs a client to its end; its counts, or an error with what it said. */
export async function runClient(argv: string[]): Promise<Counts> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success || !text) {
    throw new Error(
      `${argv[0]} failed (${out.code}): ${text} ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return JSON.parse(text.split("\n").at(-1)!);
}

/** A GET client and a POST client of one kind, running (see `startClients`). */
export interface Running extends AsyncDisposable {
  /** Stops both (their stop file) and returns their counts, GET first. */
  stop(): Promise<[Counts, Counts]>;
}

/**
 * Starts `client` twice against `url`, GETs and 4 KiB POSTs at `rate`/s
 * each, for at most `ms`, and resolves once both have started. Disposing
 * stops them and removes their stop file.
 */
export async function startClients(
  client: string,
  url: string,
  { rate, ms }: { rate: number; ms: number },
): Promise<Running> {
  const dir = await Deno.makeTempDir({ prefix: "graceful-clients-" });
  const stopFile = `${dir}/stop`;
  // Command lines first (Go's is built then), so both clients start now.
  const argvs = await Promise.all(
    [false, true].map((post) =>
      CLIENT_KINDS[client]({ url, rate, ms, post, stopFile })
    ),
  );
  const [get, post] = argvs.map(runClient);
  const stop = async (): Promise<[Counts, Counts]> => {
    await Deno.writeTextFile(stopFile, "");
    return await Promise.all([get, post]);
  };
  return {
    stop,
    async [Symbol.asyncDispose]() {
      await stop().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** What `restartsUnder` measured. */
export interface RestartCounts {
  get: Counts;
  post: Counts;
  /** The supervisor's exit code after its SIGTERM. */
  code: number;
}

/**
 * `client` (GET and POST at `rate`/s each) against `restart.ts` over the
 * fixture app while the supervisor is restarted `restarts` times (SIGHUP,
 * each waited for), then stopped.
 */
export async function restartsUnder(
  client: string,
  { restarts = 20, rate = 150 }: { restarts?: number; rate?: number } = {},
): Promise<RestartCounts> {
  const app = new URL("./fixtures/app.ts", import.meta.url).pathname;
  const port = freePort();
  const proc = await superviseScript([app, JSON.stringify({ port })]);
  await using _ = proc;
  await using clients = await startClients(client, `http://127.0.0.1:${port}`, {
    rate,
    ms: 60_000,
  });
  // A load period, not a wait for an event: the pools fill first.
  await new Promise((r) => setTimeout(r, 500));
  for (let g = 2; g <= restarts + 1; g++) {
    proc.kill("SIGHUP");
    await proc.waitFor(new RegExp(`generation ${g} serving in`), 30_000);
  }
  const [get, post] = await clients.stop();
  proc.kill("SIGTERM");
  return { get, post, code: (await proc.status).code };
}
