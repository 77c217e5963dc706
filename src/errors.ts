/**
 * Why activation failed, as an errno name. listenFds() uses the codes
 * libsystemd returns for the same input (EINVAL, ERANGE, EBADF) and ESRCH for
 * a LISTEN_PID that names the parent or another ancestor (a wrapper); listen()
 * adds ENOENT (no fd fits), EBADF (LISTEN_FDS promises more fds than were
 * passed), ENOTSOCK and EPROTOTYPE (not a stream socket), EISCONN (connected
 * where a listener was asked for), EBUSY (already served), EADDRNOTAVAIL (the
 * runtime listened somewhere other than the fd, or the fallback could not be
 * opened), EADDRINUSE (the fallback is in use) and EPERM (the process may not
 * listen on the fallback, or Deno may not read what it needs); every entry
 * adds ENOTSUP when loaded in a runtime it was not built for; notify() adds
 * ECONNREFUSED (nothing receives at NOTIFY_SOCKET), ENOTSUP (a vsock address),
 * EPERM (the runtime may not send), ENOENT (Node: no systemd-notify on PATH),
 * ETIMEDOUT (Node: the receiver did not confirm) and EINTR (Node: signals
 * killed systemd-notify at every try).
 *
 * @example Branch on the code
 * ```ts
 * import { ActivationError, type ActivationErrorCode, listenFds } from "@socket-activate/socket-activate";
 *
 * try {
 *   listenFds();
 * } catch (e) {
 *   if (!(e instanceof ActivationError)) throw e;
 *   const code: ActivationErrorCode = e.code;
 *   console.error(code === "ESRCH" ? "start the runtime without a wrapper" : e.message);
 * }
 * ```
 */
export type ActivationErrorCode =
  | "EINVAL"
  | "ERANGE"
  | "EBADF"
  | "ESRCH"
  | "ENOTSOCK"
  | "EPERM"
  | "ENOTSUP"
  | "ENOENT"
  | "EPROTOTYPE"
  | "EISCONN"
  | "EBUSY"
  | "EADDRNOTAVAIL"
  | "EADDRINUSE"
  | "ECONNREFUSED"
  | "ETIMEDOUT"
  | "EINTR";

/**
 * Thrown when the activation environment is malformed or an inherited fd
 * cannot be used. `code` is the errno name libsystemd's `sd_listen_fds`
 * returns for the same input, so a caller can branch on it; the message names
 * the variable or fd, quotes the value and says what to fix.
 *
 * @example Branch on the code
 * ```ts
 * import { ActivationError, listenFds } from "@socket-activate/socket-activate";
 *
 * try {
 *   listenFds({ env: { LISTEN_PID: "1", LISTEN_FDS: "0" }, pid: 1 });
 * } catch (error) {
 *   if (error instanceof ActivationError) console.error(error.code, error.message);
 * }
 * ```
 */
export class ActivationError extends Error {
  /** The errno name libsystemd returns for this condition. */
  readonly code: ActivationErrorCode;

  /**
   * Makes an error with an errno name and a message.
   *
   * @param code The errno name.
   * @param message What is wrong and what to do about it.
   */
  constructor(code: ActivationErrorCode, message: string) {
    super(message);
    this.name = "ActivationError";
    this.code = code;
  }
}
