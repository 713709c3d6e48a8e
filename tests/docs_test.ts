/**
 * The documentation's relative links: every one names a file of this
 * checkout, and every `#anchor` a heading of the page it points to (as
 * GitHub and JSR make anchors from headings).
 */
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);

/** The Markdown pages checked: the README, the top-level pages, docs/, bench/. */
async function pages(): Promise<string[]> {
  const found = ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"];
  for (const dir of ["docs", "bench"]) {
    for await (const entry of Deno.readDir(new URL(`${dir}/`, root))) {
      if (entry.isFile && entry.name.endsWith(".md")) {
        found.push(`${dir}/${entry.name}`);
      }
    }
  }
  return found;
}

/** GitHub's anchor for a heading. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[`*_]/g, "")
    .replace(/[^\p{L}\p{N}\s-]/gu, "").replace(/\s/g, "-");
}

function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  // Headings outside code blocks.
  const text = markdown.replace(/```[\s\S]*?```/g, "");
  for (const m of text.matchAll(/^#{1,6} (.+)$/gm)) out.add(slug(m[1]));
  return out;
}

/** The relative links of a page (outside code blocks), as written. */
function links(markdown: string): string[] {
  const text = markdown.replace(/```[\s\S]*?```/g, "").replace(
    /`[^`\n]*`/g,
    "",
  );
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1])
    .filter((target) => !/^[a-z]+:/i.test(target));
}

Deno.test("docs: every relative link names a file of this checkout, every anchor a heading", async () => {
  const dead: string[] = [];
  let checked = 0;
  for (const page of await pages()) {
    const url = new URL(page, root);
    const markdown = await Deno.readTextFile(url);
    for (const target of links(markdown)) {
      checked++;
      const [path, anchor] = target.split("#");
      const file = path === "" ? url : new URL(path, url);
      let stat: Deno.FileInfo;
      try {
        stat = await Deno.stat(file);
      } catch {
        dead.push(`${page}: ${target} (no such file)`);
        continue;
      }
      if (anchor === undefined) continue;
      if (!stat.isFile || !file.pathname.endsWith(".md")) {
        dead.push(`${page}: ${target} (an anchor into a non-Markdown file)`);
        continue;
      }
      const headings = anchors(await Deno.readTextFile(file));
      if (!headings.has(anchor)) {
        dead.push(`${page}: ${target} (no heading for #${anchor})`);
      }
    }
  }
  assert.ok(checked > 20, `only ${checked} links found: is the pattern right?`);
  assert.deepEqual(dead, []);
});

Deno.test("docs: the README stays a guide (at most 280 lines) and keeps its sections", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const lines = readme.split("\n").length;
  assert.ok(lines <= 280, `README.md has ${lines} lines`);
  for (
    const section of [
      "The problem",
      "Quick start",
      "Use it",
      "Use it without changing your code",
      "Zero-downtime restarts",
      "Behind a load balancer",
      "What Deno does by itself, and what this adds",
      "Launchers and Deno versions",
      "Benchmarks",
      "Limits",
    ]
  ) {
    assert.match(readme, new RegExp(`^## ${section}$`, "m"), section);
  }
});

Deno.test("docs: every supervised worker command (README, docs, restart.ts, deno task start:supervised, the systemd unit) has the worker flags of supervisor/_protocol.ts", async () => {
  const { WORKER_FLAGS } = await import("../supervisor/_protocol.ts");
  const files = [
    ...(await pages()),
    "restart.ts",
    "deno.json",
    "examples/deploy/app.service",
  ];
  let seen = 0;
  for (const file of files) {
    const text = await Deno.readTextFile(new URL(file, root));
    // `restart.ts [its flags] -- [path/]deno run <flags> <file>`, over lines.
    const commands = text.matchAll(
      /(?:restart\.ts|@graceful\/http\/restart)(?:\s+--?[\w-]+(?:[ =]\d+)?)*\s+(?:\\\s*\n\s*\*?\s*)?--\s+\S*deno run ((?:--[\w=,-]+\s+)+)/g,
    );
    for (const [, flags] of commands) {
      seen++;
      assert.equal(flags.trim(), WORKER_FLAGS, `${file}: ${flags.trim()}`);
    }
  }
  assert.ok(seen >= 6, `found only ${seen} worker commands`);
});

Deno.test("docs: docs/restarts.md shows app.service's [Service] section as the file has it", async () => {
  const unit = await Deno.readTextFile(
    new URL("examples/deploy/app.service", root),
  );
  const service = unit.slice(
    unit.indexOf("[Service]\n"),
    unit.indexOf("\n[Install]"),
  ).trimEnd();
  const doc = await Deno.readTextFile(new URL("docs/restarts.md", root));
  assert.ok(doc.includes("```ini\n" + service + "\n```"), service);
});

Deno.test("docs: docs/restarts.md shows restart.ts's usage as --help prints it", async () => {
  const { USAGE } = await import("../supervisor/_args.ts");
  const text = await Deno.readTextFile(new URL("docs/restarts.md", root));
  assert.ok(text.includes("```\n" + USAGE + "\n```"), "docs/restarts.md");
});

Deno.test("docs: the GRACEFUL_* variables read (server/_env.ts) are the ones ENV_VARS lists, and auto.ts's doc names each", async () => {
  const { ENV_VARS } = await import("../server/_env.ts");
  const source = await Deno.readTextFile(new URL("server/_env.ts", root));
  const body = source.slice(source.indexOf("export function optionsFromEnv"));
  // Every name read, less the old one that is refused by name.
  const read = new Set(
    [...body.matchAll(/"(GRACEFUL_[A-Z_]+)"/g)].map((m) => m[1]),
  );
  read.delete("GRACEFUL_GRACE_PERIOD");
  assert.deepEqual([...read].sort(), Object.keys(ENV_VARS).sort());
  const auto = await Deno.readTextFile(new URL("auto.ts", root));
  const doc = auto.slice(0, auto.indexOf("@module"));
  for (const name of Object.keys(ENV_VARS)) {
    assert.ok(doc.includes(`\`${name}`), `auto.ts's doc lacks ${name}`);
  }
});

/** `@default` of each option of `interface name` in `file`. */
async function jsdocDefaults(file: string, name: string) {
  const source = await Deno.readTextFile(new URL(file, root));
  const from = source.indexOf(`export interface ${name}`);
  const body = source.slice(from, source.indexOf("\n}\n", from));
  return new Map(
    [...body.matchAll(/@default ([^\n]*)\n\s*\*\/\n\s*(\w+)\??:/g)]
      .map((m) => [m[2], m[1]]),
  );
}

Deno.test("docs: the README's serve() options table lists every option with its JSDoc @default, which is what the code applies", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const from = readme.indexOf("`serve()` takes every `Deno.serve` TCP option");
  const table = readme.slice(from, readme.indexOf("\n\n", from + 100));
  const rows = new Map(
    [...table.matchAll(/^\| `(\w+)` +\| (.+?) +\|/gm)].map((m) => [m[1], m[2]]),
  );
  const documented = new Map([
    ...await jsdocDefaults("server/_server_types.ts", "ServeOptions"),
    ...await jsdocDefaults("lifecycle/_shutdown_types.ts", "ShutdownOptions"),
  ]);
  assert.deepEqual([...rows.keys()].sort(), [...documented.keys()].sort());
  const values: Record<string, unknown> = {};
  for (const [name, text] of rows) {
    const doc = documented.get(name)!;
    if (text === "none") assert.equal(doc, "undefined", name);
    else if (/^`[-\d"[tf]/.test(text)) {
      const value = JSON.parse(text.slice(1, -1));
      // The JSDoc may add a note in parentheses (signals on Windows).
      assert.deepEqual(value, JSON.parse(doc.replace(/ \(.*\)$/, "")), name);
      values[name] = value;
    }
  }
  const { drainOptions } = await import("../server/_options.ts");
  const { Shutdown } = await import("../shutdown.ts");
  const applied = drainOptions({});
  assert.deepEqual(
    {
      drainTimeout: applied.drainTimeout,
      drainDelay: applied.drainDelay.max,
      retryAfter: applied.retryAfter,
      endStreamsAtDeadline: applied.endStreams,
      hooksTimeout: new Shutdown({ logger: false }).hooksTimeout,
    },
    {
      drainTimeout: values.drainTimeout,
      drainDelay: values.drainDelay,
      retryAfter: values.retryAfter,
      endStreamsAtDeadline: values.endStreamsAtDeadline,
      hooksTimeout: values.hooksTimeout,
    },
  );
});

Deno.test("docs: every number and boolean @default of SupervisorOptions is what supervisorSettings applies, and what restart.ts --help says", async () => {
  const documented = await jsdocDefaults(
    "supervisor/_supervisor_options.ts",
    "SupervisorOptions",
  );
  const { supervisorSettings } = await import(
    "../supervisor/_supervisor_options.ts"
  );
  const { USAGE } = await import("../supervisor/_args.ts");
  const applied = supervisorSettings({
    command: ["deno"],
  }) as unknown as Record<string, unknown>;
  const checked = [];
  for (const [name, doc] of documented) {
    if (!/^(\d+|true|false)$/.test(doc)) continue;
    assert.equal(applied[name], JSON.parse(doc), name);
    checked.push(name);
    const flag = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    const line = USAGE.slice(USAGE.indexOf(`--${flag} `)).split(/\n {2}--/)[0];
    if (typeof applied[name] === "number" && USAGE.includes(`--${flag} `)) {
      assert.match(line, new RegExp(`\\(default ${doc}\\b`), flag);
    }
  }
  assert.ok(checked.length >= 8, checked.join());
});
