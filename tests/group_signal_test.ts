/**
 * A stop delivered as production delivers it: systemd's default
 * `KillMode=control-group`, a terminal's Ctrl+C and `kill -TERM -PGID` signal
 * the supervisor *and* its workers, in an order nobody chooses. Each order is
 * forced here: the whole group at once, the supervisor first, the workers
 * first, 0 and 200 ms apart. Whatever the order, every in-flight request gets
 * its 200 and every process exits 0.
 */
import assert from "node:assert/strict";
import {
  Conn,
  freePort,
  inFlight,
  Proc,
  type RawResponse,
  SUPERVISOR_FLAGS,
  WORKER_FLAGS,
} from "./_helpers.ts";

const here = (path: string) => new URL(path, import.meta.url).pathname;
const RESTART = here("../restart.ts");
const APP = here("./fixtures/app.ts");

type Order =
  | "group"
  | "supervisor first"
  | "supervisor first, 200 ms"
  | "workers first"
  | "workers first, 200 ms";

const ORDERS: Order[] = [
  "group",
  "supervisor first",
  "supervisor first, 200 ms",
  "workers first",
  "workers first, 200 ms",
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function signal(pid: number, name: Deno.Signal) {
  try {
    Deno.kill(pid, name);
  } catch {
    // gone already: that order's second half came too late to matter
  }
}

/**
 * One supervisor with `workers` workers in a process group of its own,
 * `requests` slow requests in flight, then `name` delivered in `order`.
 */
async function stopInOrder(
  workers: number,
  name: Deno.Signal,
  order: Order,
): Promise<void> {
  const port = freePort();
  const proc = Proc.group([
    ...SUPERVISOR_FLAGS,
    RESTART,
    "--workers",
    String(workers),
    "--",
    Deno.execPath(),
    "run",
    ...WORKER_FLAGS,
    APP,
    JSON.stringify({ port }),
  ]);
  await using _ = proc;
  await proc.waitFor(
    new RegExp(`(generation 1\\) ready[\\s\\S]*){${workers}}`),
  );
  const pids = [
    ...proc.stderr.matchAll(/worker pid (\d+) \(generation 1\) ready/g),
  ]
    .map((m) => Number(m[1]));
  const requests = 2 * workers;
  const conns = await Promise.all(
    Array.from({ length: requests }, () => Conn.open(port)),
  );
  const pending: Promise<RawResponse>[] = conns.map((c) =>
    c.request("/slow?ms=1500")
  );
  await inFlight(proc, "/slow", requests);
  const label = `${workers} worker(s), ${name}, ${order}`;
  const supervisor = () => signal(proc.pid, name);
  const each = () => pids.forEach((pid) => signal(pid, name));
  if (order === "group") proc.kill(name);
  else if (order.startsWith("supervisor first")) {
    supervisor();
    if (order.endsWith("200 ms")) await sleep(200);
    each();
  } else {
    each();
    if (order.endsWith("200 ms")) await sleep(200);
    supervisor();
  }
  const responses = await Promise.all(pending);
  conns.forEach((c) => c.close());
  for (const res of responses) {
    assert.equal(res.status, 200, `${label}\n${proc.output()}`);
    assert.match(res.body, /^slow done \d+/, label);
  }
  const status = await proc.status;
  assert.equal(status.code, 0, `${label}: supervisor\n${proc.output()}`);
  for (const pid of pids) {
    assert.match(
      proc.stderr,
      new RegExp(`worker pid ${pid} \\(generation 1\\) exited with code 0 `),
      `${label}: worker ${pid}\n${proc.output()}`,
    );
  }
  assert.doesNotMatch(proc.stderr, /second SIG|exiting now/, label);
}

for (const workers of [1, 2]) {
  for (const name of ["SIGTERM", "SIGINT"] as const) {
    Deno.test(`group signals: ${name} to a supervisor with ${workers} worker(s) in each order (group, supervisor or workers first, 0 and 200 ms apart): every request 200, every process exits 0`, async () => {
      // The orders run side by side: each has its own group and port.
      await Promise.all(
        ORDERS.map((order) => stopInOrder(workers, name, order)),
      );
    });
  }
}
