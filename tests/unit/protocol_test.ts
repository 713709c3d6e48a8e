/**
 * The supervisor's protocol (supervisor/_protocol.ts), both directions: the
 * commands a worker reads on stdin, and the reports the supervisor reads on
 * the worker's stderr, whatever else is written around them.
 */
import assert from "node:assert/strict";
import {
  type Command,
  commandLine,
  parseCommand,
  parseReport,
  redact,
  reportAt,
  reportLine,
} from "../../supervisor/_protocol.ts";

const SECRET = "0123456789abcdef0123456789abcdef";
const OTHER = "fedcba9876543210fedcba9876543210";

Deno.test("protocol: every command survives its line", () => {
  const commands: Command[] = [
    { kind: "hello", nonce: SECRET },
    { kind: "drain", delay: 1000, detach: false },
    { kind: "drain", delay: 0, detach: true },
    { kind: "resume" },
    { kind: "stop" },
    { kind: "commit" },
    { kind: "steer", exclude: 2, count: 3 },
    { kind: "unsteer" },
    { kind: "ping" },
  ];
  for (const command of commands) {
    const line = commandLine(command);
    assert.ok(line.endsWith("\n"));
    assert.deepEqual(parseCommand(line.slice(0, -1)), command);
  }
});

Deno.test("protocol: lines that are not commands are not acted on", () => {
  for (
    const line of [
      "",
      "hello",
      "hello 123",
      `hello ${SECRET} extra`,
      "drain",
      "drain -1",
      "drain 99999999999",
      `drain ${2 ** 31}`,
      "drain 10 attach",
      "steer 3 3",
      "steer 0 1",
      "steer 0 257",
      "stop now",
      "restart",
      "STOP",
    ]
  ) {
    assert.equal(parseCommand(line), undefined, JSON.stringify(line));
  }
});

Deno.test("protocol: a worker's reports are read with its secret only", () => {
  for (const kind of ["quiet", "alive"] as const) {
    const line = reportLine(kind, SECRET).trimEnd();
    assert.deepEqual(parseReport(line, SECRET), { kind, ours: true });
    assert.deepEqual(parseReport(line, OTHER), { kind, ours: false });
    assert.deepEqual(parseReport(`${line} 12`, SECRET), { kind, ours: false });
  }
  const ready = reportLine("ready", SECRET, 4242).trimEnd();
  assert.deepEqual(parseReport(ready, SECRET), {
    kind: "ready",
    ours: true,
    pid: 4242,
  });
  assert.deepEqual(parseReport(ready, OTHER), { kind: "ready", ours: false });
});

Deno.test("protocol: a ready report naming a pid kill would misread is not ours", () => {
  for (const pid of ["0", "1", "-5", "4294967296", "12a", "", "99999999999"]) {
    assert.deepEqual(
      parseReport(`graceful: ready ${SECRET} ${pid}`, SECRET),
      { kind: "ready", ours: false },
      pid,
    );
  }
  assert.deepEqual(
    parseReport(`graceful: ready ${SECRET} 42 7`, SECRET),
    { kind: "ready", ours: false },
  );
});

Deno.test("protocol: app lines are not reports, and a report is found after unterminated text", () => {
  for (const line of ["hello", "graceful: ready", "graceful:ready x", ""]) {
    assert.equal(parseReport(line, SECRET), undefined, line);
    assert.equal(reportAt(line), -1, line);
  }
  const glued = `loading config... ${reportLine("ready", SECRET, 42)}`
    .trimEnd();
  const at = reportAt(glued);
  assert.equal(glued.slice(0, at), "loading config... ");
  assert.equal(parseReport(glued.slice(at), SECRET)?.pid, 42);
  assert.equal(reportAt(`x graceful: alive ${SECRET} graceful: quiet`), 2);
});

Deno.test("protocol: redact takes every secret out of a message", () => {
  assert.equal(
    redact(`graceful: ready ${SECRET} 42 and ${OTHER}`),
    "graceful: ready <secret> 42 and <secret>",
  );
});
