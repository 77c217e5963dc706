// Start-up baseline (b) for Node: the smallest fd-3 greeter by hand, in
// CommonJS, which Node 20 starts about 3 ms sooner than an ES module (as the
// bin is built).
// Greets like the package's echo server, then echoes with ASCII letters upper-cased.
const net = require("node:net");

const activated = process.env.LISTEN_PID === String(process.pid) && process.env.LISTEN_FDS === "1";
const greeting = `OHAI! systemd socket: ${activated}\n`;

net.createServer((s) => {
  s.on("error", () => {});
  s.write(greeting);
  s.on("data", (d) => {
    for (let i = 0; i < d.length; i++) if (d[i] >= 97 && d[i] <= 122) d[i] -= 32;
    if (!s.write(d)) {
      s.pause();
      s.once("drain", () => s.resume());
    }
  });
}).listen({ fd: 3 });
