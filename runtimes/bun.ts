/**
 * The package for Bun: the same API as the main entry, with the Bun shim
 * registered. npm resolves `socket-activate` here under Bun through the
 * `bun` export condition; import `socket-activate/bun` to name it directly.
 *
 * @example Read the activation environment
 * ```ts
 * import { listenFds } from "@socket-activate/socket-activate/bun";
 *
 * console.log(listenFds());
 * ```
 *
 * @module
 */
import { setRuntime } from "../src/_runtime.ts";
import { bunRuntime } from "./_bun.ts";

setRuntime(bunRuntime);

export * from "../src/public.ts";
export { type BunListening, listenBun } from "./_native_bun.ts";
export { listenServer, type ServerListening, type ServerListenOptions } from "./_native_net.ts";
