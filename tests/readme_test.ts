/**
 * Every TypeScript snippet in the README runs here, as a real process, with
 * the import names mapped to this checkout and `8080` to a free port. Each
 * snippet carries a `<!-- readme-test: NAME -->` marker naming its test; a
 * snippet without one fails the suite.
 */
import assert from "node:assert/strict";
import { exited, freePort, Proc } from "./_helpers.ts";

const root = new URL("../", import.meta.url);
const readme = await Deno.readTextFile(new URL("README.md", root));
const { exports } = JSON.parse(
  await Deno.readTextFile(new URL("deno.json", root)),
) as { exports: Record<string, string> };

const snippets = new Map<string, string>();
for (
  const m of readme.matchAll(
    /<!-- readme-test: ([\w-]+)[^>]*-->\s*```ts\n([\s\S]*?)```/g,
  )
) snippets.set(m[1], m[2]);

Deno.test("README: every TypeScript snippet is marked with its test", () => {
  const all = [...readme.matchAll(/```ts\n/g)].length;
  assert.equal(snippets.size, all, `marked: ${[...snippets.keys()]}`);
  assert.deepEqual([...snippets.keys()].sort(), [
    "problem",
    "queue",
    "use-it",
    "websocket",
  ]);
});

Deno.test("README: every TypeScript snippet passes deno lint as pasted", async () => {
  for (const [name, code] of snippets) {
    const path = await Deno.makeTempFile({ suffix: `-${name}.ts` });
    await Deno.writeTextFile(path, code);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["lint", "--quiet", path],
      stdout: "piped",
      stderr: "piped",
    }).output();
    await Deno.remove(path);
    const said = new TextDecoder().decode(out.stderr) +
      new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, `README snippet ${name}:\n${said}`);
  }
});

/** Writes the snippet, after `prelude`, as a module importing this checkout. */
async function program(name: string, prelude = ""): Promise<{
  path: string;
  port: number;
}> {
  const port = freePort();
  let code = snippets.get(name)!.replaceAll("8080", String(port));
  code = code.replace(
    /from "(@graceful\/http[^"]*)"/g,
    (_, specifier: string) => {
      const target = exports["." + specifier.slice("@graceful/http".length)];
      assert.ok(target, `README imports ${specifier}, which is not exported`);
      return `from "${new URL(target, root).href}"`;
    },
  );
  const path = await Deno.makeTempFile({ suffix: `-${name}.ts` });
  await Deno.writeTextFile(path, `${prelude}\n${code}`);
  return { path, port };
}

function run(path: string, env: Record<string, string> = {}): Proc {
  return new Proc(["run", "--check", "--allow-net", "--allow-env", path], env);
}

Deno.test("README problem: plain Deno.serve dies on SIGINT, the in-flight client gets no reply", async () => {
  const { path, port } = await program("problem");
  const proc = run(path);
  await using _ = proc;
  await proc.waitFor(/Listening on/);
  const response = fetch(`http://127.0.0.1:${port}/`);
  response.catch(() => {});
  // No event says the handler has started: the request is written at once
  // and the handler takes 3 s, so 300 ms is well inside it.
  await new Promise((r) => setTimeout(r, 300));
  proc.kill("SIGINT");
  await assert.rejects(response); // curl says: (52) Empty reply from server
  assert.equal((await proc.status).signal, "SIGINT");
  await Deno.remove(path);
});

Deno.test("README use-it: serves, drains on SIGINT, runs the hook, exits 0", async () => {
  const { path, port } = await program("use-it");
  const proc = run(path);
  await using _ = proc;
  await proc.waitFor(/Listening on/);
  const res = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(await res.text(), "hello\n");
  proc.kill("SIGINT");
  const { code } = await exited(proc, 0);
  assert.equal(code, 0, proc.output());
  assert.equal(proc.stdout.trim().split("\n").at(-1), "db closed");
  await Deno.remove(path);
});

Deno.test("README websocket: SIGINT sends the goodbye and close 1012", async () => {
  const { path, port } = await program("websocket");
  const proc = run(path);
  await using _ = proc;
  await proc.waitFor(/Listening on/);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  const messages: string[] = [];
  ws.onmessage = (e) => messages.push(e.data);
  const closed = new Promise<CloseEvent>((r) => ws.onclose = r);
  await new Promise((r) => ws.onopen = r);
  proc.kill("SIGINT");
  const event = await closed;
  assert.deepEqual(messages, ["server restarting, reconnect shortly"]);
  assert.equal(event.code, 1012);
  assert.equal((await proc.status).code, 0, proc.output());
  await Deno.remove(path);
});

/** A stand-in queue: a job every 50 ms; each job takes 400 ms. */
const QUEUE = `
let n = 0;
const queue = {
  next(signal?: AbortSignal): Promise<number | undefined> {
    const honour = Deno.env.get("QUEUE_IGNORES_SIGNAL") !== "1";
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(++n), 50);
      if (honour) signal?.addEventListener("abort", () => { clearTimeout(t); resolve(undefined); });
    });
  },
  close: () => console.log("queue closed"),
};
async function handle(job: number) {
  console.log(\`job \${job} started\`);
  await new Promise((r) => setTimeout(r, 400));
  console.log(\`job \${job} done\`);
}
`;

for (const ignores of [false, true]) {
  Deno.test(
    `README queue: the job in hand finishes before exit (next() ${
      ignores ? "ignores" : "honours"
    } the signal)`,
    async () => {
      const { path } = await program("queue", QUEUE);
      const proc = run(path, { QUEUE_IGNORES_SIGNAL: ignores ? "1" : "0" });
      await using _ = proc;
      // Signal while a job runs, or (ignores) while the loop waits for the next.
      await proc.waitFor(ignores ? /job 1 done/ : /job 1 started/);
      proc.kill("SIGINT");
      const { code } = await exited(proc, 0);
      assert.equal(code, 0, proc.output());
      const lines = proc.stdout.trim().split("\n");
      const last = lines.filter((l) => l.startsWith("job")).at(-1)!;
      assert.match(last, /^job \d+ done$/, proc.output());
      assert.equal(lines.at(-1), "queue closed");
      await Deno.remove(path);
    },
  );
}
