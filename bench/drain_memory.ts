/**
 * Peak RSS of a server drained with N requests in flight (each handler
 * waits 3 s, then reads its body), for GETs and POSTs of 4 KiB and 64 KiB,
 * serve() against raw Deno.serve + shutdown() by hand:
 *   deno run -A bench/drain_memory.ts [N,...]
 * Prints one Markdown row per case. Linux only (reads /proc).
 */
const SERVER = new URL("./fixtures/drain_memory_server.ts", import.meta.url)
  .pathname;
const counts = (Deno.args[0] ?? "1,100,1000,5000").split(",").map(Number);

async function once(n: number, size: number, raw: boolean) {
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = free.addr.port;
  free.close();
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      SERVER,
      String(port),
      String(n),
      ...(raw ? ["raw"] : []),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = server.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let out = "";
  while (!out.includes("listening")) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`server ended: ${out}`);
    out += value;
  }
  const head = size > 0
    ? `POST / HTTP/1.1\r\nhost: x\r\ncontent-length: ${size}\r\n\r\n`
    : "GET / HTTP/1.1\r\nhost: x\r\n\r\n";
  const request = new Uint8Array([
    ...new TextEncoder().encode(head),
    ...new Uint8Array(size).fill(97),
  ]);
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < n; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(request);
    conns.push(conn);
  }
  // Every handler running (a request not yet parsed would be an idle
  // connection to shutdown(), closed unanswered).
  while (!out.includes("all in")) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`server ended: ${out}`);
    out += value;
  }
  const start = performance.now();
  server.kill("SIGTERM");
  let ok = 0;
  await Promise.all(conns.map(async (conn) => {
    // The whole answer: the server closes the connection after it.
    let text = "";
    const buf = new Uint8Array(4096);
    while (text.length < 4096) {
      const got = await conn.read(buf).catch(() => null);
      if (!got) break;
      text += new TextDecoder().decode(buf.subarray(0, got));
    }
    if (text.startsWith("HTTP/1.1 200") && text.endsWith(`\r\n\r\n${size}`)) {
      ok++;
    }
    conn.close();
  }));
  const ms = Math.round(performance.now() - start);
  while (!out.includes("peak")) {
    const { value, done } = await lines.read();
    if (done) break;
    out += value;
  }
  await server.status;
  const kb = Number(out.match(/peak (\d+) kB/)?.[1]);
  return { kb, ok, ms };
}

console.log(
  "| N in flight | request | server | peak RSS MiB | answered whole | drain ms |",
);
console.log("| ---: | --- | --- | ---: | ---: | ---: |");
for (const n of counts) {
  for (const size of [0, 4096, 65536]) {
    for (const raw of [false, true]) {
      const { kb, ok, ms } = await once(n, size, raw);
      console.log(
        `| ${n} | ${size ? `POST ${size / 1024} KiB` : "GET"} | ${
          raw ? "raw, by hand" : "serve()"
        } | ${(kb / 1024).toFixed(1)} | ${ok} of ${n} | ${ms} |`,
      );
    }
  }
}
