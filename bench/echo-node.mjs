// Throughput baseline (b) for Node: net.createServer with a 'data' handler on an
// ordinary port. Usage: node bench/echo-node.mjs PORT   (prints READY when listening)
import net from "node:net";

const port = Number(process.argv[2]);
const greeting = "OHAI! systemd socket: false\n";

const server = net.createServer((s) => {
  s.on("error", () => {});
  s.write(greeting);
  s.on("data", (d) => {
    for (let i = 0; i < d.length; i++) if (d[i] >= 97 && d[i] <= 122) d[i] -= 32;
    if (!s.write(d)) {
      s.pause();
      s.once("drain", () => s.resume());
    }
  });
});
server.on("error", (e) => {
  console.error(`echo-node: ${e.message}`);
  process.exit(1);
});
server.listen({ port, host: "127.0.0.1", exclusive: true }, () => console.log("READY"));
