/** restart.ts's command line (supervisor/_args.ts), parsed without a process. */
import assert from "node:assert/strict";
import { parseArgs, USAGE } from "../../supervisor/_args.ts";

Deno.test("args: options before --, the worker command after it", () => {
  const options = parseArgs([
    "--workers",
    "2",
    "--pre-drain",
    "500",
    "--no-steer",
    "--heartbeat",
    "5000",
    "--watch",
    "--",
    "deno",
    "run",
    "server.ts",
  ]);
  assert.ok(options !== "help");
  assert.equal(options.workers, 2);
  assert.equal(options.preDrain, 500);
  assert.equal(options.steer, false);
  assert.equal(options.heartbeat, 5000);
  assert.deepEqual(options.watch, ["."]);
  assert.deepEqual(options.command, ["deno", "run", "server.ts"]);
});

Deno.test("args: --help is asked for, not an error, whatever follows", () => {
  assert.equal(parseArgs(["--help"]), "help");
  assert.equal(parseArgs(["--help", "--", "deno"]), "help");
  assert.match(USAGE, /^usage: restart\.ts \[options\] -- <command\.\.\.>/);
});

Deno.test("args: each bad value names its flag and the value", () => {
  const cases: [string[], RegExp][] = [
    [["--workers", "0", "--", "x"], /^--workers: .* got "0"/],
    [["--workers", "65", "--", "x"], /^--workers: .*1 to 64, got "65"/],
    [["--pre-drain", "1.5", "--", "x"], /^--pre-drain: .* got "1\.5"/],
    [["--pre-drain", "--", "x"], /^--pre-drain needs a value/],
    [
      ["--pre-drain", "100", "--rollback-window", "200", "--", "x"],
      /^--rollback-window: expected at most --pre-drain \(100 ms\), got 200/,
    ],
    [["deno", "run"], /^unexpected argument "deno": put the command after --/],
    [[], /^no command to run: put it after --/],
    [["--nope", "--", "x"], /^unknown option "--nope"/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseArgs(args), { message }, args.join(" "));
  }
});
