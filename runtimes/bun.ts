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
import { bunRuntime } from "./bun/runtime.ts";

setRuntime(bunRuntime);

export * from "../src/public.ts";
export { type BunListening, listenBun } from "./bun/flavour.ts";
export { listenServer, type ServerListening, type ServerListenOptions } from "./node_api/flavour.ts";
