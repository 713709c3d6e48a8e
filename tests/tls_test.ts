/**
 * TLS and HTTP/2: a request in flight across SIGTERM completes, over
 * HTTPS with HTTP/1.1 and with HTTP/2 (curl, a self-signed certificate made
 * here by openssl).
 */
import assert from "node:assert/strict";
import { exited, inFlight, start } from "./_helpers.ts";

async function selfSigned(): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    return {
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const tls = await selfSigned();

for (const version of ["--http1.1", "--http2"]) {
  Deno.test(`TLS ${version.slice(2)}: a 1.5 s request across SIGTERM completes with 200, exit 0`, async () => {
    const { proc, port } = await start(tls);
    await using _ = proc;
    const curl = new Deno.Command("curl", {
      args: [
        "-sk",
        version,
        "--max-time",
        "10",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{http_version}",
        `https://127.0.0.1:${port}/slow?ms=1500`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    await inFlight(proc, "/slow");
    proc.kill("SIGTERM");
    const out = await curl;
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const lines = text.trim().split("\n");
    const [body, status] = [lines[0], lines.at(-1)];
    assert.match(body, /^slow done \d+$/);
    assert.equal(status, version === "--http2" ? "200 2" : "200 1.1");
    const { code } = await exited(proc, 0);
    assert.equal(code, 0, proc.output());
    assert.match(proc.stderr, /drained .*: 1 request\(s\) completed/);
  });
}
