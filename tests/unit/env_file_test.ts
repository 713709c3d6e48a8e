/** The supervisor's env file (supervisor/_env_file.ts): dotenv's common core. */
import assert from "node:assert/strict";
import { parseEnvFile } from "../../supervisor/_env_file.ts";

Deno.test("env file: KEY=VALUE, comments, export, quotes", () => {
  assert.deepEqual(
    parseEnvFile(
      [
        "# a comment",
        "",
        "A=1",
        "export B = two words",
        "C='single $NOT expanded'",
        'D="line\\nbreak and \\"quotes\\""',
        "E=value # trailing comment",
        "F=",
      ].join("\n"),
    ),
    {
      A: "1",
      B: "two words",
      C: "single $NOT expanded",
      D: 'line\nbreak and "quotes"',
      E: "value",
      F: "",
    },
  );
});

Deno.test("env file: a bad line is named", () => {
  assert.throws(
    () => parseEnvFile("A=1\nnot a pair\n"),
    { message: 'line 2: expected KEY=VALUE, got "not a pair"' },
  );
  assert.throws(
    () => parseEnvFile('A="open'),
    { message: "line 1: unterminated quote in A" },
  );
});
