// The unit files `socket-activate unit` writes: NAME.socket and NAME.service.
import type { Ctx, Resolved } from "./unit_resolve.ts";
import { execWord, quote, specifiers } from "./unit_quote.ts";

/** What `socket-activate unit` was asked for, parsed. */
export interface Options {
  name: string;
  listen: string[];
  datagram: boolean;
  accept: boolean;
  notify: boolean;
  /** --reload: ExecReload= sends SIGHUP, and the package reloads with no gap (src/_reload.ts). */
  reload: boolean;
  watchdog?: string;
  user?: string;
  fdname?: string;
  env: string[];
  out?: string;
  force: boolean;
  command: string[];
  /** --podman IMAGE: the service runs the image in a --network=none container. */
  podman?: string;
}

export function renderSocket(o: Options): string {
  const key = o.datagram ? "ListenDatagram" : "ListenStream";
  const lines = [
    "[Unit]",
    `Description=${o.name} socket`,
    "",
    "[Socket]",
    ...o.listen.map((l) => `${key}=${specifiers(l)}`),
  ];
  if (o.accept) lines.push("Accept=yes");
  if (o.fdname !== undefined) lines.push(`FileDescriptorName=${o.fdname}`);
  lines.push("", "[Install]", "WantedBy=sockets.target", "");
  return lines.join("\n");
}

export function renderService(o: Options, r: Resolved, ctx: Ctx): string {
  const lines = ["[Unit]", `Description=${o.name}${o.accept ? " connection %i" : ""}`];
  // Instances of an Accept=yes template are started by the socket itself.
  if (!o.accept) lines.push(`Requires=${o.name}.socket`, `After=${o.name}.socket`);
  lines.push("", "[Service]");
  if (o.notify) lines.push("Type=notify");
  if (o.reload) {
    lines.push(
      "# SIGHUP: the server starts a successor on the same sockets, hands it MAINPID= once it is ready, and drains",
      "# (Type=notify-reload, systemd 253 and later, sends the SIGHUP itself)",
      "ExecReload=kill -HUP $MAINPID",
    );
  }
  if (o.notify || o.watchdog !== undefined) {
    if (o.podman !== undefined) {
      lines.push(
        "# The container's processes send sd_notify over the mounted socket; none is the main PID (podman)",
        "NotifyAccess=all",
      );
    } else if (r.runtime === "node" && !r.nodeFfi) {
      lines.push(
        "# This Node (22, 24) sends sd_notify through systemd-notify, whose own PID systemd sees when not root",
        "NotifyAccess=all",
      );
    } else if (!o.notify) lines.push("NotifyAccess=main"); // for the watchdog pings: Type=notify implies it
  }
  if (o.watchdog !== undefined) lines.push(`WatchdogSec=${o.watchdog}`);
  if (o.watchdog !== undefined && o.podman !== undefined) {
    lines.push(
      "# Not SIGABRT: podman does not pass it on, and the server, PID 1 of the container, has no handler for it",
      "WatchdogSignal=SIGTERM",
    );
  }
  for (const e of [...ctx.env, ...o.env]) lines.push(`Environment=${quote(specifiers(e))}`);
  if (ctx.workingDirectory !== undefined) lines.push(`WorkingDirectory=${specifiers(ctx.workingDirectory)}`);
  if (o.user !== undefined) lines.push(`User=${o.user}`);
  lines.push(`ExecStart=${r.argv.map(execWord).join(" ")}`, "");
  return lines.join("\n");
}
