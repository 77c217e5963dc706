// The server in a container: what a root file system without a shell, or a
// wrapper between the container's PID 1 and the server, does to activation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cliCommand, freePort, start } from "./_util.ts";

// A private mount namespace whose /bin/sh is /dev/null: a root file system
// without a shell, as a distroless image is, for one process.
const noShell = spawnSync("/usr/bin/unshare", ["--mount", "--propagation", "private", "true"]).status === 0
  ? false
  : "unshare --mount is not permitted here (needs CAP_SYS_ADMIN)";
const withoutShell = (cmd: string[]) => [
  "/usr/bin/unshare",
  "--mount",
  "--propagation",
  "private",
  "/bin/sh",
  "-c",
  'mount --bind /dev/null /bin/sh && exec "$@"',
  "sh",
  ...cmd,
];

test("run without /bin/sh fails at once, saying why and what to do", { skip: noShell }, async () => {
  const port = await freePort();
  const r = start(withoutShell([...cliCommand(), "run", "-l", `127.0.0.1:${port}`, "--", "true"]));
  assert.equal(await r.exited(), 127, r.stderr());
  assert.equal(
    r.stderr(),
    "socket-activate run: /bin/sh is missing: run starts COMMAND through it to set LISTEN_PID to COMMAND's own " +
      "PID (no runtime can set a variable between fork and exec). Without a shell, let the service manager " +
      "start COMMAND (systemd, systemd-socket-activate, or podman under either), or add /bin/sh\n",
  );
});
