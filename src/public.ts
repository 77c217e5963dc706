// Everything the package exports, in one list that mod.ts and the runtime
// entries re-export.
export { ActivationError, type ActivationErrorCode } from "./errors.ts";
export { LISTEN_FDS_START, type ListenFd, listenFds, type ListenFdsOptions } from "./listen_fds.ts";
export { type FdInfo, type FdKind, inspectFd } from "./inspect_fd.ts";
export { VERSION } from "./version.ts";
export {
  type Addr,
  type Conn,
  type ConnHandler,
  type Fallback,
  listen,
  type ListenOptions,
  type Server,
} from "./listen.ts";
export {
  barrier,
  errno,
  extendTimeout,
  mainPid,
  notify,
  type NotifyOptions,
  ready,
  reloading,
  removeFds,
  status,
  stopping,
  storeFds,
  watchdog,
} from "./notify.ts";
export { watchdogInterval, type WatchdogOptions } from "./watchdog.ts";
export {
  type DatagramHandler,
  type DatagramOptions,
  type DatagramServer,
  listenDatagram,
} from "./datagram.ts";
export { type Fifo, type FifoOptions, openFifo } from "./fifo.ts";
export { FastResponse } from "./fast_response.ts";
export {
  type HttpListening,
  listenHttp,
  type ListenHttpOptions,
  serve,
  type ServeErrorHandler,
  type ServeHandler,
  type ServeInfo,
  type ServeOptions,
  type TlsOptions,
} from "./serve.ts";
export {
  type ServerWebSocket,
  upgradeWebSocket,
  type UpgradeWebSocketOptions,
  type WebSocketHandlers,
} from "./websocket.ts";
