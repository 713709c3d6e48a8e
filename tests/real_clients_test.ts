/**
 * Client libraries we did not write, with their own connection pools and no
 * retry: Node's fetch (undici), Node's `http.Agent({ keepAlive: true })`,
 * Python's `requests` (Debian's python3-requests) and Go's `net/http`
 * default client (Debian's golang-go). Each sends GETs and 4 KiB POSTs
 * (the body checked by its SHA-256) at a fixed rate through 20 supervisor
 * restarts: not one may fail or be refused.
 */
import assert from "node:assert/strict";
import { freePort, superviseScript } from "./_helpers.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;
const APP = here("./fixtures/app.ts");
const CLIENTS = here("./fixtures/clients/");
const RESTARTS = 20;
/** Requests per second of each client process (GET and POST each). */
const RATE = 150;

interface Counts {
  sent: number;
  ok: number;
  refused: number;
  failed: number;
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

const CLIENT_KINDS: Record<string, (json: string) => Promise<string[]>> = {
  "Node fetch (undici)": (json: string) =>
    Promise.resolve([
      "node",
      `${CLIENTS}node_fetch.mjs`,
      json,
    ]),
  "Node http.Agent keepAlive": (json: string) =>
    Promise.resolve([
      "node",
      `${CLIENTS}node_fetch.mjs`,
      JSON.stringify({ ...JSON.parse(json), agent: true }),
    ]),
  "Python requests": (json: string) =>
    Promise.resolve([
      "/usr/bin/python3",
      `${CLIENTS}python_requests.py`,
      json,
    ]),
  "Go net/http": async (json: string) => [await buildGo(), json],
};

/** Runs a client to its end; its counts, or an error with what it said. */
async function runClient(argv: string[]): Promise<Counts> {
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

for (const [name, argv] of Object.entries(CLIENT_KINDS)) {
  Deno.test(`real clients: ${name}, GETs and 4 KiB POSTs at ${RATE}/s each through ${RESTARTS} supervisor restarts: none failed or refused`, async () => {
    const port = freePort();
    const proc = await superviseScript([APP, JSON.stringify({ port })]);
    await using _ = proc;
    const url = `http://127.0.0.1:${port}`;
    // The clients send until this file exists (at most a minute).
    const stopFile = `${await Deno.makeTempDir()}/stop`;
    const ms = 60_000;
    const clients = [false, true].map(async (post) =>
      runClient(
        await argv(JSON.stringify({ url, rate: RATE, ms, post, stopFile })),
      )
    );
    // Restarts begin once the clients' pools are warm.
    await new Promise((r) => setTimeout(r, 500));
    for (let g = 2; g <= RESTARTS + 1; g++) {
      proc.kill("SIGHUP");
      await proc.waitFor(new RegExp(`generation ${g} serving in`), 30_000);
    }
    await Deno.writeTextFile(stopFile, "");
    const [get, post] = await Promise.all(clients);
    for (const [method, counts] of [["GET", get], ["POST", post]] as const) {
      assert.ok(counts.sent > RATE * 5, `${method}: sent ${counts.sent}`);
      assert.deepEqual(
        { failed: counts.failed, refused: counts.refused },
        { failed: 0, refused: 0 },
        `${name} ${method}: ${JSON.stringify(counts)}`,
      );
      assert.equal(counts.ok, counts.sent);
    }
    proc.kill("SIGTERM");
    assert.equal((await proc.status).code, 0);
  });
}
