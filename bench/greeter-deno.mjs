// Start-up baseline (b) for Deno: Deno.listen cannot take an fd (denoland/deno#6529,
// #14006), so the smallest fd-3 greeter goes through node:net.
import net from "node:net";

const activated = Deno.env.get("LISTEN_PID") === String(Deno.pid) && Deno.env.get("LISTEN_FDS") === "1";
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
