/**
 * Real load balancers for the tests and the benchmark: nginx, HAProxy and Caddy run
 * in the foreground with the recipes of examples/deploy/ (ports replaced)
 * and files of their own in a temporary directory, never as services. A
 * client that never retries sends 300 req/s through them while the
 * backends restart.
 */
import {
  freePort,
  type LoadCounts,
  Proc,
  start,
  superviseScript,
} from "./_helpers.ts";

const DEPLOY = new URL("../examples/deploy/", import.meta.url);
const LOAD = new URL("./fixtures/load.ts", import.meta.url).pathname;
const APP = new URL("./fixtures/app.ts", import.meta.url).pathname;
/** Time between two rolling rounds (or supervisor restarts). */
const CADENCE_MS = 1000;

/** The path of `name` on this machine, or undefined. */
function binary(name: string): string | undefined {
  for (const dir of ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/sbin"]) {
    try {
      Deno.statSync(`${dir}/${name}`);
      return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** nginx's path, if installed. */
export const NGINX: string | undefined = binary("nginx");
/** HAProxy's path, if installed. */
export const HAPROXY: string | undefined = binary("haproxy");
/** Caddy's path, if installed. */
export const CADDY: string | undefined = binary("caddy");

/** A recipe with its example ports (8080 front, 8081/8082 backends) replaced. */
export async function recipe(
  name: string,
  ports: Record<string, number>,
): Promise<string> {
  let text = await Deno.readTextFile(new URL(name, DEPLOY));
  for (const [from, to] of Object.entries(ports)) {
    text = text.replaceAll(`127.0.0.1:${from}`, `127.0.0.1:${to}`);
  }
  return text;
}

/** Resolves once `path` exists (a file the balancer writes after binding). */
async function appears(path: string, proc: Proc, ms = 10_000) {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    try {
      await Deno.stat(path);
      return;
    } catch {
      // Polling a file: the balancers print nothing when ready.
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  throw new Error(`${path} never appeared\n${proc.output()}`);
}

/** Runs `command` in the foreground; resolves once `ready` exists. */
async function foreground(
  command: string[],
  ready: string,
  env: Record<string, string> = {},
): Promise<Proc> {
  const proc = new Proc([], env, command, true);
  await appears(ready, proc);
  return proc;
}

/** nginx with `site` (an http-block snippet) in `dir`, once it listens. */
export async function nginx(dir: string, site: string): Promise<Proc> {
  await Deno.writeTextFile(`${dir}/app.conf`, site);
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .map((kind) => `  ${kind}_temp_path ${dir}/${kind};`).join("\n");
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
${temp}
  include ${dir}/app.conf;
}
`,
  );
  // nginx writes its pid file after it has bound its sockets.
  return await foreground(
    [NGINX!, "-p", dir, "-e", "stderr", "-c", `${dir}/nginx.conf`],
    `${dir}/nginx.pid`,
  );
}

/** HAProxy with `config` (plus a stats socket) in `dir`, once it listens. */
export async function haproxy(dir: string, config: string): Promise<Proc> {
  await Deno.writeTextFile(
    `${dir}/haproxy.cfg`,
    `global\n    stats socket ${dir}/admin.sock level admin\n\n${config}`,
  );
  return await foreground(
    [HAPROXY!, "-db", "-f", `${dir}/haproxy.cfg`],
    `${dir}/admin.sock`,
  );
}

/**
 * Caddy with `caddyfile` in `dir`, once it listens (it writes its pid file
 * after its servers have started). Its data and config directories are in
 * `dir` too: nothing is written to the user's.
 */
export async function caddy(dir: string, caddyfile: string): Promise<Proc> {
  await Deno.writeTextFile(`${dir}/Caddyfile`, caddyfile);
  return await foreground(
    [
      CADDY!,
      "run",
      "--config",
      `${dir}/Caddyfile`,
      "--adapter",
      "caddyfile",
      "--pidfile",
      `${dir}/caddy.pid`,
    ],
    `${dir}/caddy.pid`,
    {
      HOME: dir,
      XDG_DATA_HOME: `${dir}/data`,
      XDG_CONFIG_HOME: `${dir}/config`,
    },
  );
}

/** HAProxy's view of a server of backend `app`: "UP", "DOWN", ... */
async function serverStatus(dir: string, server: string): Promise<string> {
  const conn = await Deno.connect({
    transport: "unix",
    path: `${dir}/admin.sock`,
  });
  await conn.write(new TextEncoder().encode("show stat\n"));
  const text = await new Response(conn.readable).text();
  const row = text.split("\n").find((line) =>
    line.startsWith(`app,${server},`)
  );
  return row?.split(",")[17] ?? "missing";
}

/** Waits until HAProxy has seen `server` pass its health check. */
async function upIn(dir: string, server: string, ms = 10_000) {
  const until = performance.now() + ms;
  let status = "";
  while (performance.now() < until) {
    status = await serverStatus(dir, server);
    if (status.startsWith("UP")) return;
    await new Promise((r) => setTimeout(r, 50)); // polling HAProxy's state
  }
  throw new Error(`HAProxy never saw ${server} up (last: ${status})`);
}

/**
 * Waits until `front` answers with a response from process `pid` (the
 * fixture's `ok <pid>`): the balancer is sending to that backend again. Caddy
 * 2.6 has no health state to ask (its admin API shows none), and answers a
 * POST with 503 at once while no backend is healthy, so a rolling restart
 * must not drain the next backend before the last one is back.
 */
async function servedBy(front: number, pid: number, ms = 10_000) {
  const until = performance.now() + ms;
  let seen = "";
  while (performance.now() < until) {
    const res = await fetch(`http://127.0.0.1:${front}/`, {
      headers: { connection: "close" },
    });
    // The fixture answers "/" with "ok <pid>".
    seen = `${res.status} ${(await res.text()).trim()}`;
    if (seen === `200 ok ${pid}`) return;
  }
  throw new Error(`the balancer never sent to pid ${pid} (last: ${seen})`);
}

/** What one run through a balancer gave. */
export interface BalancerRun extends LoadCounts {
  balancer:
    | "haproxy"
    | "nginx"
    | "caddy"
    | "nginx → supervisor"
    | "caddy → supervisor";
  request: "get" | "post";
  /** Backend restarts (each backend counts once per rolling round). */
  restarts: number;
  /** SIGTERM → exit of each old backend (ms), for plain backends. */
  exits: number[];
  /** The old backends' stderr, for plain backends. */
  logs: string[];
}

/** Options of one run. */
export interface BalancerOptions {
  balancer: BalancerRun["balancer"];
  post: boolean;
  /** Rolling rounds (plain backends: 2 restarts each) or supervisor restarts. */
  rounds: number;
  /** The backends' serve() options (plain backends). */
  backend?: Record<string, unknown>;
}

/** Runs a balancer with backends under load and restarts them. */
export async function balancerRun(
  { balancer, post, rounds, backend = {} }: BalancerOptions,
): Promise<BalancerRun> {
  const dir = await Deno.makeTempDir({ prefix: "graceful-balancer-" });
  const front = freePort();
  const ports = [freePort(), freePort()];
  const procs: Proc[] = [];
  const exits: number[] = [];
  const logs: string[] = [];
  try {
    let restart: () => Promise<number>;
    let stop = () => Promise.resolve();
    let front_: Proc;
    if (balancer.endsWith("→ supervisor")) {
      const supervisor = await superviseScript([
        APP,
        JSON.stringify({ port: ports[0], logger: false }),
      ]);
      procs.push(supervisor);
      const example = { 8080: front, 8081: ports[0] };
      if (balancer === "nginx → supervisor") {
        const site = (await recipe("nginx.conf", example))
          .replace(/^\s*server 127\.0\.0\.1:8082.*\n/m, "");
        front_ = await nginx(dir, site);
      } else {
        // The same recipe with one upstream: the supervisor's port.
        const site = (await recipe("Caddyfile", example))
          .replace(" 127.0.0.1:8082 {", " {");
        front_ = await caddy(dir, site);
      }
      let generation = 1;
      stop = async () => {
        supervisor.kill("SIGTERM");
        await supervisor.status;
      };
      restart = async () => {
        supervisor.kill("SIGHUP");
        generation++;
        await supervisor.waitFor(
          new RegExp(`generation ${generation} serving`),
          60_000,
        );
        return 1;
      };
    } else {
      const backends: Proc[] = [];
      const startBackend = async (i: number) => {
        backends[i] = (await start({ port: ports[i], ...backend })).proc;
        procs.push(backends[i]);
      };
      await startBackend(0);
      await startBackend(1);
      const example = { 8080: front, 8081: ports[0], 8082: ports[1] };
      if (balancer === "haproxy") {
        front_ = await haproxy(dir, await recipe("haproxy.cfg", example));
        await upIn(dir, "a");
        await upIn(dir, "b");
      } else if (balancer === "caddy") {
        front_ = await caddy(dir, await recipe("Caddyfile", example));
      } else {
        front_ = await nginx(dir, await recipe("nginx.conf", example));
      }
      restart = async () => {
        for (const i of [0, 1]) {
          const old = backends[i];
          const signalled = performance.now();
          old.kill("SIGTERM");
          await old.status;
          exits.push(Math.round(performance.now() - signalled));
          logs.push(old.stderr);
          await startBackend(i);
          if (balancer === "haproxy") await upIn(dir, i === 0 ? "a" : "b");
          if (balancer === "caddy") await servedBy(front, backends[i].pid);
        }
        return 2;
      };
    }
    procs.push(front_);
    const client = new Proc([
      "run",
      "--allow-net",
      LOAD,
      JSON.stringify({
        port: front,
        rate: 300,
        duration: 600_000,
        mode: "keepalive",
        connections: post ? 20 : 10,
        ...(post ? { path: "/upload?wait=random", body: 4096 } : {}),
      }),
    ]);
    procs.push(client);
    await client.waitFor(/load running/);
    let restarts = 0;
    for (let round = 0; round < rounds; round++) {
      restarts += await restart();
      // The scenario's cadence (not a synchronisation): traffic flows through
      // the new backends for a while before the next rolling round.
      await new Promise((r) => setTimeout(r, CADENCE_MS));
    }
    client.kill("SIGTERM");
    await client.status;
    const result = JSON.parse(client.stdout.trim().split("\n").pop()!);
    front_.kill(balancer.startsWith("nginx") ? "SIGQUIT" : "SIGTERM");
    await front_.status;
    await stop();
    return {
      balancer,
      request: post ? "post" : "get",
      restarts,
      sent: result.sent,
      ok: result.ok,
      failures: result.failures,
      failed: Object.values(result.failures as Record<string, number>)
        .reduce((a, b) => a + b, 0),
      samples: result.samples,
      exits,
      logs,
    };
  } finally {
    for (const proc of procs.reverse()) await proc[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
}
