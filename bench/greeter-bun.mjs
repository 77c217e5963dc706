// Start-up baseline (b) for Bun: Bun.listen({ fd: 3 }) (works, though missing
// from Bun's type definitions). Handles partial writes: Bun's write() returns
// how many bytes it took and keeps none of the rest.
const activated = process.env.LISTEN_PID === String(process.pid) && process.env.LISTEN_FDS === "1";
const greeting = `OHAI! systemd socket: ${activated}\n`;

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
  fd: 3,
  socket: {
    open(s) {
      s.data = [];
      send(s, new TextEncoder().encode(greeting));
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
