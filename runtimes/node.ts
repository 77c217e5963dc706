/**
 * The package for Node: the same API as the main entry, with the Node shim
 * registered. npm resolves `socket-activate` here under Node through the
 * `node` export condition; import `socket-activate/node` to name it directly.
 *
 * @example Read the activation environment
 * ```ts
 * import { listenFds } from "@socket-activate/socket-activate/node";
 *
 * console.log(listenFds());
 * ```
 *
 * @module
 */
import { setRuntime } from "../src/_runtime.ts";
import { nodeRuntime } from "./node/runtime.ts";

setRuntime(nodeRuntime);

export * from "../src/public.ts";
export { listenServer, type ServerListening, type ServerListenOptions } from "./node_api/flavour.ts";
