// Throughput baseline (b) for Deno: Deno.listen and a conn.read/conn.write loop
// on an ordinary port. Usage: deno run -A bench/echo-deno.mjs PORT   (prints READY)
const port = Number(Deno.args[0]);
const greeting = new TextEncoder().encode("OHAI! systemd socket: false\n");

async function writeAll(conn, buf) {
  for (let off = 0; off < buf.length;) off += await conn.write(buf.subarray(off));
}

async function serve(conn) {
  const buf = new Uint8Array(64 * 1024);
  try {
    await writeAll(conn, greeting);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      for (let i = 0; i < n; i++) if (buf[i] >= 97 && buf[i] <= 122) buf[i] -= 32;
      await writeAll(conn, buf.subarray(0, n));
    }
  } catch { /* peer went away */ }
  try {
    conn.close();
  } catch { /* closed */ }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log("READY");
for await (const conn of listener) serve(conn);
