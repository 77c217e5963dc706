/**
 * The package for Deno: the same API as the main entry, with the Deno shim
 * registered. npm resolves `socket-activate` here under Deno through the
 * `deno` export condition; import `socket-activate/deno` to name it directly.
 *
 * @example Read the activation environment
 * ```ts
 * import { listenFds } from "@socket-activate/socket-activate/deno";
 *
 * console.log(listenFds());
 * ```
 *
 * @module
 */
import { setRuntime } from "../src/_runtime.ts";
import { cloexecAtImport, denoRuntime } from "./deno/runtime.ts";

setRuntime(denoRuntime);
cloexecAtImport();

export * from "../src/public.ts";
export { type DenoListening, listenDeno } from "./deno/flavour.ts";
export { listenServer, type ServerListening, type ServerListenOptions } from "./node_api/flavour.ts";
