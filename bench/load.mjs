// The load generator, the same client for every server: CONNS concurrent
// connections; each reads the greeting, then sends BYTES of lower-case ASCII in
// CHUNK-sized writes (respecting backpressure) while reading the echo back
// concurrently, checking the byte count and sampled bytes (must be upper-cased).
// The clock runs from the first write (all greetings in) to the last echoed byte.
//
//   node bench/load.mjs PORT [CONNS=8] [MIB_PER_CONN=32] [HOST=127.0.0.1]   -> JSON on stdout
import net from "node:net";
import { performance } from "node:perf_hooks";

const GREETING = /^OHAI! systemd socket: (true|false)\n$/;

/** Pattern byte at stream offset o: the same 64 KiB buffer is written over and over. */
function makeChunk(size) {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = 97 + (i % 26);
  return b;
}

/**
 * @param {{ port: number, host?: string, conns?: number, bytesPerConn?: number, chunk?: number,
 *           timeoutMs?: number, expectActivated?: boolean }} o
 * @returns {Promise<{ bytes: number, seconds: number, mibps: number, activated: boolean[] }>}
 */
export async function runLoad(o) {
  const host = o.host ?? "127.0.0.1";
  const conns = o.conns ?? 8;
  const total = o.bytesPerConn ?? 32 * 1024 * 1024;
  const chunkSize = o.chunk ?? 64 * 1024;
  const chunk = makeChunk(chunkSize);
  const timeoutMs = o.timeoutMs ?? 60_000;
  const sockets = [];
  let failTimeout;
  const timedOut = new Promise((_, reject) => (failTimeout = reject));
  timedOut.catch(() => {});
  const states = [];
  const timer = setTimeout(() => {
    const got = states.map((s) => s.received).join(", ");
    failTimeout(
      new Error(`load: timed out after ${timeoutMs} ms (echoed bytes per connection: ${got} of ${total})`),
    );
  }, timeoutMs);

  function open(i) {
    return new Promise((resolveGreeting, rejectGreeting) => {
      const s = net.connect({ port: o.port, host });
      sockets.push(s);
      const st = { sock: s, received: 0, greeting: "", greeted: false, done: undefined, fail: undefined };
      states[i] = st;
      const finished = new Promise((res, rej) => ((st.done = res), (st.fail = rej)));
      finished.catch(() => {});
      st.finished = finished;
      const fail = (e) => {
        rejectGreeting(e);
        st.fail(e);
      };
      s.on("error", (e) => fail(new Error(`load: connection ${i}: ${e.message}`)));
      s.on(
        "close",
        () =>
          fail(
            new Error(
              `load: connection ${i} closed by the server after ${st.received} of ${total} echoed bytes`,
            ),
          ),
      );
      s.on("data", (d) => {
        if (!st.greeted) {
          st.greeting += d.toString("latin1");
          const nl = st.greeting.indexOf("\n");
          if (nl < 0) {
            if (st.greeting.length > 200) {
              fail(new Error(`load: connection ${i}: no greeting line: ${JSON.stringify(st.greeting)}`));
            }
            return;
          }
          const m = GREETING.exec(st.greeting);
          if (!m) {
            return fail(new Error(`load: connection ${i}: bad greeting ${JSON.stringify(st.greeting)}`));
          }
          st.greeted = true;
          st.activated = m[1] === "true";
          return resolveGreeting();
        }
        const off = st.received;
        // Sampled check of the content: byte at stream offset x is upper('a' + (x % chunk) % 26).
        for (let j = 0; j < d.length; j += 4093) {
          const x = off + j;
          if (d[j] !== 65 + ((x % chunkSize) % 26)) {
            return fail(new Error(`load: connection ${i}: wrong byte ${d[j]} at offset ${x}`));
          }
        }
        const last = d.length - 1, xl = off + last;
        if (d[last] !== 65 + ((xl % chunkSize) % 26)) {
          return fail(new Error(`load: connection ${i}: wrong byte at ${xl}`));
        }
        st.received += d.length;
        if (st.received > total) {
          return fail(new Error(`load: connection ${i}: ${st.received} bytes echoed, sent ${total}`));
        }
        if (st.received === total) {
          s.removeAllListeners("close");
          st.done();
        }
      });
    });
  }

  async function send(st) {
    const s = st.sock;
    let sent = 0;
    while (sent < total) {
      const n = Math.min(chunkSize, total - sent);
      sent += n;
      if (!s.write(n === chunkSize ? chunk : chunk.subarray(0, n))) {
        await new Promise((res, rej) => {
          s.once("drain", res);
          st.finished.catch(rej);
        });
      }
    }
  }

  try {
    await Promise.race([Promise.all(Array.from({ length: conns }, (_, i) => open(i))), timedOut]);
    const activated = states.map((s) => s.activated);
    if (o.expectActivated !== undefined && activated.some((a) => a !== o.expectActivated)) {
      throw new Error(`load: greeting said activated=${activated} but expected ${o.expectActivated}`);
    }
    const t0 = performance.now();
    await Promise.race([Promise.all(states.map((st) => Promise.all([send(st), st.finished]))), timedOut]);
    const seconds = (performance.now() - t0) / 1000;
    const bytes = total * conns;
    return { bytes, seconds, mibps: bytes / 1048576 / seconds, activated };
  } finally {
    clearTimeout(timer);
    for (const s of sockets) {
      s.removeAllListeners("close");
      s.on("error", () => {});
      s.destroy();
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [port, conns = "8", mib = "32", host = "127.0.0.1"] = process.argv.slice(2);
  if (!port) {
    console.error("usage: node bench/load.mjs PORT [CONNS=8] [MIB_PER_CONN=32] [HOST=127.0.0.1]");
    process.exit(2);
  }
  runLoad({ port: Number(port), host, conns: Number(conns), bytesPerConn: Number(mib) * 1048576 })
    .then((r) => console.log(JSON.stringify(r)))
    .catch((e) => {
      console.error(e.message);
      process.exit(1);
    });
}
