// Throughput baseline (b) for Bun: Bun.listen with a data handler on an ordinary
// port, handling partial writes (write() returns how many bytes it took and keeps
// none of the rest). Usage: bun run bench/echo-bun.mjs PORT   (prints READY)
const port = Number(process.argv[2]);
const greeting = new TextEncoder().encode("OHAI! systemd socket: false\n");

function send(s, buf) {
  const q = s.data;
  if (q.length > 0) return void q.push(new Uint8Array(buf));
  const n = s.write(buf);
  if (n < buf.length) {
    q.push(new Uint8Array(buf.subarray(Math.max(n, 0)))); // copy: Bun reuses buf
    s.pause();
  }
}

Bun.listen({
  hostname: "127.0.0.1",
  port,
  socket: {
    open(s) {
      s.data = [];
      send(s, greeting);
    },
    data(s, d) {
      for (let i = 0; i < d.length; i++) if (d[i] >= 97 && d[i] <= 122) d[i] -= 32;
      send(s, d);
    },
    drain(s) {
      const q = s.data;
      while (q.length > 0) {
        const n = s.write(q[0]);
        if (n < q[0].length) return void (q[0] = q[0].subarray(Math.max(n, 0)));
        q.shift();
      }
      s.resume();
    },
  },
});
console.log("READY");
