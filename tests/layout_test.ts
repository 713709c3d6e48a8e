/**
 * The library's shape, as ARCHITECTURE.md promises it: small files with one
 * job each, none over 400 lines (root `*.ts`, `lifecycle/`, `server/`,
 * `supervisor/`). A file that grows past it is split, not let through.
 */
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const MAX_LINES = 400;

Deno.test("layout: no library file is over 400 lines", async () => {
  const sizes: [string, number][] = [];
  for (const dir of ["", "lifecycle/", "server/", "supervisor/"]) {
    for await (const entry of Deno.readDir(new URL(dir, root))) {
      if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
      const text = await Deno.readTextFile(new URL(dir + entry.name, root));
      sizes.push([dir + entry.name, text.split("\n").length - 1]);
    }
  }
  assert.ok(sizes.length > 40, `${sizes.length} files found`);
  const over = sizes.filter(([, lines]) => lines > MAX_LINES);
  assert.deepEqual(over, [], `over ${MAX_LINES} lines`);
});
