/**
 * The demo on a Deno release below the supported range: one line at start
 * names the release and what the suite found wrong there, and the graceful
 * stop still works (never a silent non-engagement). Needs that release:
 * `GRACEFUL_TEST_BELOW_DENO` names its binary (`.ci/run` installs 2.9.5
 * from npm); without it the test is skipped and says so.
 */
import assert from "node:assert/strict";
import { rangeText } from "../lifecycle/_deno_check.ts";
import { Conn, exited, Proc } from "./_helpers.ts";

const below = Deno.env.get("GRACEFUL_TEST_BELOW_DENO");
if (!below) {
  console.error(
    "skipped: the below-the-range test needs GRACEFUL_TEST_BELOW_DENO, the path of a Deno binary older than the range (.ci/run sets it)",
  );
}

Deno.test({
  name:
    "below the range (GRACEFUL_TEST_BELOW_DENO): the demo says at start which release it is and what degrades, then drains the 3 s request on SIGINT and exits 0",
  ignore: !below,
  async fn() {
    const version = new TextDecoder().decode(
      (await new Deno.Command(below!, { args: ["--version"] }).output())
        .stdout,
    ).match(/^deno (\S+)/)![1];
    const server = new URL("../server.ts", import.meta.url).pathname;
    const proc = new Proc([], {}, [
      below!,
      "run",
      "--allow-net",
      server,
      "--port",
      "0",
      "--host",
      "127.0.0.1",
    ], true);
    await using _ = proc;
    const m = await proc.waitFor(/listening on http:\/\/[^:]+:(\d+)\//);
    const lines = proc.stderr.trim().split("\n");
    assert.equal(lines.length, 1, proc.output());
    assert.match(
      lines[0],
      new RegExp(
        `^\\[graceful\\] Deno ${
          version.replaceAll(".", "\\.")
        } is older than the supported range \\(${rangeText()}\\): .+; upgrade Deno$`,
      ),
    );
    assert.doesNotMatch(lines[0], /not tested/);
    const conn = await Conn.open(Number(m[1]));
    const response = conn.request("/", {});
    await proc.waitFor(/GET \/: answering/);
    proc.kill("SIGINT");
    const res = await response;
    conn.close();
    assert.equal(res.status, 200, proc.output());
    assert.equal(res.body, "hello world\n");
    const { code } = await exited(proc, 0);
    assert.equal(code, 0, proc.output());
    assert.match(proc.stderr, /drained .* 1 request\(s\) completed/);
  },
});
