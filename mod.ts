/**
 * systemd socket activation for TypeScript, the same under Node, Deno and
 * Bun: read the sockets the service manager (systemd, launchd via
 * systemd-socket-activate, systemfd) handed this process, exactly as
 * libsystemd's `sd_listen_fds_with_names` does, and tell what each fd is.
 *
 * Run as a program (`deno run -A mod.ts`, `bun run mod.ts`), this module is
 * the `socket-activate` command line.
 *
 * @example Read the activation environment
 * ```ts
 * import { inspectFd, listenFds } from "@socket-activate/socket-activate";
 *
 * for (const { fd, name } of listenFds()) {
 *   const info = inspectFd(fd);
 *   console.log(`fd ${fd} (${name}): ${info.kind} ${info.address ?? ""}`);
 * }
 * ```
 *
 * @module
 */
import { setRuntime } from "./src/_runtime.ts";
import { detectRuntime } from "./runtimes/detect.ts";

export * from "./src/public.ts";

// JSR has no export conditions, so this universal entry has to look at the
// runtime itself; npm consumers get runtimes/<name>.ts through conditions.
const runtime = await detectRuntime();
setRuntime(runtime);

if ((import.meta as { main?: boolean }).main) {
  const { main } = await import("./src/cli/main.ts");
  runtime.exit(await main(runtime.args()));
}
