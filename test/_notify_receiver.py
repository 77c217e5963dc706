# A test receiver for sd_notify datagrams: binds the AF_UNIX SOCK_DGRAM
# address given (a path, or @name for an abstract one) with SO_PASSCRED,
# prints "ready", then one JSON line per datagram: its exact text and the
# sender's PID from SCM_CREDENTIALS. Closes any fds passed with SCM_RIGHTS
# (a BARRIER=1 sender waits for that). Exits after argv[2] seconds.
import array, json, os, socket, struct, sys, time

addr = sys.argv[1]
deadline = time.monotonic() + float(sys.argv[2] if len(sys.argv) > 2 else 20)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(b"\0" + addr[1:].encode() if addr.startswith("@") else addr)
print("ready", flush=True)
while time.monotonic() < deadline:
    s.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4 * 16))
    except socket.timeout:
        break
    pid = None
    fds = []
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
        elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(payload[: len(payload) - len(payload) % 4])
            fds.extend(a)
    inodes = [os.fstat(fd).st_ino for fd in fds]
    for fd in fds:
        os.close(fd)
    print(json.dumps({"data": data.decode("utf-8", "replace"), "pid": pid, "fds": len(fds), "inodes": inodes}), flush=True)
