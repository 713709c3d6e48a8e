/**
 * `deno task bench`: overhead, shutdown latency and restarts under load,
 * side by side in one run. Writes bench/results/results.{json,md} and
 * restarts.svg (the chart of the new-connection runs).
 *
 *   deno task bench            the full run (~20 min on 2 cores)
 *   deno task bench --long     more rounds, 100 restarts per configuration
 *   deno task bench --smoke    a few seconds: checks the harness, writes to a temp dir
 *   deno task bench --only=overhead,shutdown,restarts,memory,drain-memory,census,telemetry,restart-idle,balancers,kubernetes,clients
 *   deno task bench --bodies=post-4k,post-1mib --out=/tmp/b   some bodies, elsewhere
 *   deno task bench --only=restarts --methods=supervisor --restarts=30   some rows
 *   deno task bench --only=clients --clients=python --rounds=80   one SIGTERM, longer
 *   deno task bench --report   re-render results.md and restarts.svg from results.json
 *
 * All traffic stays on loopback (restarts in network namespaces of their
 * own where possible); every process started here is ended by pid.
 */
import { overhead } from "./_overhead.ts";
import { type Results, writeReports } from "./_report.ts";
import { type Method, restartRun } from "./_restarts.ts";
import { canPin, ensureWrk, median, netns, sh } from "./_run.ts";
import { type Parsed, parseFlags, wholeNumber } from "../lifecycle/_cli.ts";
import { shutdownLatency } from "./_shutdown.ts";
import { supervisorMemory } from "./_memory.ts";
import { balancers } from "./_balancers.ts";
import { kubernetes } from "./_kubernetes.ts";
import { clientStops } from "./_clients.ts";
import { drainMemory } from "./_drain_memory.ts";
import { censusCost } from "./_census.ts";
import { telemetryCost } from "./_telemetry.ts";
import { restartIdle } from "./_restart_idle.ts";

const USAGE =
  "usage: deno task bench [--smoke | --long] [--only=overhead,shutdown,restarts,memory,drain-memory,census,telemetry,restart-idle,balancers,kubernetes,clients] [--bodies=hello,post-4k,...] [--balancers=haproxy,nginx,caddy] [--methods=naive,handoff,unsteered,fixed,supervisor] [--restarts=N] [--clients=undici,python,...] [--rounds=N] [--out=DIR] [--report]";
let flags: Parsed["values"];
try {
  const parsed = parseFlags(Deno.args, {
    smoke: { type: "boolean" },
    long: { type: "boolean" },
    report: { type: "boolean" },
    only: { type: "string" },
    bodies: { type: "string" },
    balancers: { type: "string" },
    out: { type: "string" },
    methods: { type: "string" },
    restarts: { type: "string" },
    clients: { type: "string" },
    rounds: { type: "string" },
  });
  if (parsed.positionals.length) {
    throw new Error(
      `unexpected argument ${JSON.stringify(parsed.positionals[0])}`,
    );
  }
  flags = parsed.values;
} catch (error) {
  console.error(`bench: ${(error as Error).message}\n${USAGE}`);
  Deno.exit(2);
}
const smoke = flags.smoke === true;
const long = flags.long === true;
const only = (flags.only as string | undefined)?.split(",");
const RESULTS = (flags.out as string | undefined) ??
  new URL("./results/", import.meta.url).pathname;
const args = new Set(flags.report ? ["--report"] : []);
if (args.has("--report")) {
  // Re-render the Markdown and the chart from the committed results.json.
  const saved = JSON.parse(await Deno.readTextFile(`${RESULTS}/results.json`));
  console.log(await writeReports(RESULTS, saved));
  Deno.exit(0);
}
const PARTS = [
  "overhead",
  "shutdown",
  "restarts",
  "memory",
  "drain-memory",
  "census",
  "telemetry",
  "restart-idle",
  "balancers",
  "kubernetes",
  "clients",
];
const unknown = only?.find((part) => !PARTS.includes(part));
if (unknown !== undefined) {
  console.error(
    `bench: --only: unknown part ${JSON.stringify(unknown)} (known: ${
      PARTS.join(", ")
    })\n${USAGE}`,
  );
  Deno.exit(2);
}
const wanted = (part: string) => !only || only.includes(part);
const log = (line: string) => console.error(`[bench] ${line}`);

const ALL_BODIES = [
  "control",
  "hello",
  "1mib",
  "stream",
  "stream-wrapped",
  "stream-unwrapped",
  "sse",
  "file-1mib",
  "file-100mib",
  "fetch",
  "post-4k",
  "post-1mib",
  "post-stream",
  "post-stream-1mib",
  "control-post-stream",
];
const BODIES = (flags.bodies as string | undefined)?.split(",") ?? ALL_BODIES;
for (const body of BODIES) {
  if (!ALL_BODIES.includes(body)) {
    console.error(
      `bench: --bodies: unknown body ${JSON.stringify(body)}; use ${
        ALL_BODIES.join(", ")
      }`,
    );
    Deno.exit(2);
  }
}

const METHODS = [
  "naive",
  "handoff",
  "unsteered",
  "fixed",
  "supervisor",
] as const;
const methods = (flags.methods as string | undefined)?.split(",") ??
  [...METHODS];
for (const method of methods) {
  if (!(METHODS as readonly string[]).includes(method)) {
    console.error(
      `bench: --methods: unknown method ${JSON.stringify(method)}; use ${
        METHODS.join(", ")
      }`,
    );
    Deno.exit(2);
  }
}
const restartCount = flags.restarts === undefined
  ? undefined
  : Number(flags.restarts);
if (
  restartCount !== undefined &&
  (!Number.isInteger(restartCount) || restartCount < 1 || restartCount > 1000)
) {
  console.error(
    `bench: --restarts: expected a whole number from 1 to 1000, got ${
      JSON.stringify(flags.restarts)
    }`,
  );
  Deno.exit(2);
}

const settings = smoke
  ? {
    rounds: 1,
    seconds: 1,
    bodies: ["hello"],
    shutdownRuns: 2,
    restarts: 2,
    interval: 1500,
  }
  : long
  ? {
    rounds: 10,
    seconds: 5,
    bodies: BODIES,
    shutdownRuns: 20,
    restarts: 100,
    interval: 1500,
  }
  : {
    rounds: 7,
    seconds: 5,
    bodies: BODIES,
    shutdownRuns: 10,
    restarts: 50,
    interval: 1500,
  };
if (restartCount !== undefined) settings.restarts = restartCount;

async function machine(): Promise<Record<string, string | number>> {
  const cpu = (await sh(["cat", "/proc/cpuinfo"]).catch(() => ""))
    .match(/model name\s*:\s*(.+)/)?.[1] ?? "unknown";
  return {
    cores: navigator.hardwareConcurrency,
    cpu,
    kernel: Deno.osRelease(),
    os: Deno.build.os,
    deno: Deno.version.deno,
    date: new Date().toISOString().slice(0, 10),
  };
}

const pin = await canPin();
const results: Results = {
  machine: await machine(),
  settings: {
    mode: smoke ? "smoke" : long ? "long" : "default",
    pinned: pin,
    ...settings,
    bodies: settings.bodies.join(" "),
  },
  overhead: [],
  shutdown: [],
  restarts: [],
};

if (wanted("overhead")) {
  const haveWrk = await ensureWrk().then(() => true, (error) => {
    if (!smoke) throw error;
    log(
      `no wrk (${
        error.message.split("\n")[0]
      }): overhead skipped in the smoke run`,
    );
    return false;
  });
  if (haveWrk) {
    results.overhead = await overhead(
      settings.bodies,
      settings.rounds,
      settings.seconds,
      pin,
      log,
    );
  }
}
if (wanted("shutdown")) {
  results.shutdown = await shutdownLatency(settings.shutdownRuns, log);
}
if (wanted("memory")) {
  const restarts = smoke ? 4 : long ? 2000 : 1000;
  results.memory = await supervisorMemory(restarts, smoke ? 2 : 100, log);
}
if (wanted("drain-memory")) {
  results.drainMemory = smoke
    ? await drainMemory([10], log, { waitMs: 200, rounds: 1 })
    : await drainMemory([1, 100, 1000, 5000], log, { rounds: long ? 5 : 3 });
}
if (wanted("census")) {
  results.census = await censusCost([20, 200], smoke ? 1 : 5, log);
}
if (wanted("telemetry")) {
  results.telemetry = await telemetryCost(smoke ? 1 : 5, log);
}
if (wanted("restart-idle")) {
  results.restartIdle = await restartIdle(smoke ? 2 : 11, log);
}
if (wanted("balancers")) {
  results.balancers = await balancers(
    smoke ? 1 : long ? 20 : 10,
    smoke,
    log,
    (flags.balancers as string | undefined)?.split(","),
  );
}
if (wanted("kubernetes")) {
  results.kubernetes = await kubernetes(smoke ? 1 : long ? 10 : 5, smoke, log);
}
if (wanted("clients")) {
  // --rounds: SIGTERMs per client and server (then no restarts rows).
  const rounds = flags.rounds === undefined
    ? undefined
    : wholeNumber("--rounds", flags.rounds as string, 1, 10_000);
  results.clients = await clientStops(
    rounds ?? (smoke ? 1 : long ? 20 : 10),
    rounds !== undefined ? 0 : smoke ? 2 : 20,
    log,
    (flags.clients as string | undefined)?.split(","),
  );
}
if (wanted("restarts")) {
  const probe = await netns();
  const missing = typeof probe === "string" ? probe : undefined;
  if (typeof probe !== "string") await probe[Symbol.asyncDispose]();
  const migrates: (0 | 1)[] = missing ? [1] : [0, 1];
  if (missing) log(`${missing}: restarts run on the host`);
  type Config = [Method, "keepalive" | "new", 0 | 1, "get" | "post", number?];
  const configs: Config[] = smoke
    ? [["supervisor", "keepalive", 1, "get"], ["supervisor", "new", 1, "post"]]
    : migrates.flatMap((m) =>
      (["keepalive", "new"] as const).flatMap((mode) => [
        ...METHODS.map((method) => [method, mode, m, "get"] as Config),
        // POSTs: the supervisor with and without steering, and with the
        // pre-drain of a fixed length.
        ["unsteered", mode, m, "post"] as Config,
        ["fixed", mode, m, "post"] as Config,
        ["supervisor", mode, m, "post"] as Config,
      ])
    ).concat(
      // Two workers on the default kernel.
      missing
        ? []
        : (["fixed", "supervisor"] as const).flatMap((method) =>
          (["new", "keepalive"] as const).flatMap((mode) =>
            (["get", "post"] as const).map((request) =>
              [method, mode, 0, request, 2] as Config
            )
          )
        ),
    ).filter(([method]) => methods.includes(method));
  for (const [method, mode, migrate, request, workers = 1] of configs) {
    const run = await restartRun(
      method,
      mode,
      migrate,
      settings.restarts,
      settings.interval,
      request,
      workers,
    );
    results.restarts.push(run);
    log(
      `restarts ${method}${
        workers > 1 ? ` (${workers} workers)` : ""
      } ${mode} ${request} tcp_migrate_req=${run.migrateReq}: ${run.failed} failed of ${run.sent} in ${run.restarts} restarts ${
        JSON.stringify(run.failures)
      }; signal → old gone, median ${Math.round(median(run.restartMs!))} ms`,
    );
  }
}

const dir = smoke
  ? await Deno.makeTempDir({ prefix: "graceful-bench-" })
  : RESULTS;
const md = await writeReports(dir, results);
console.log(md);
if (!smoke) log(`results written to ${dir}`);
if (smoke) {
  const ok = results.shutdown.length > 0 &&
    (!wanted("restarts") || results.restarts.every((r) => r.ok > 0));
  if (!ok) {
    log("smoke run produced no numbers");
    Deno.exit(1);
  }
  await Deno.remove(dir, { recursive: true });
}
