# The real libsystemd as a test oracle: evaluates sd_listen_fds_with_names for
# each environment read from stdin (a JSON object {"open": K, "cases": [...]})
# in this one process, with fds 3 .. 3+K-1 open and the ones above closed, and
# prints one JSON result per case. LISTEN_PID templates: {PID} decimal, {PIDX}
# hex, {PIDO} octal, {PIDB} binary, {PID+1} another process.
import errno, json, os, sys
from systemd import _daemon

req = json.load(sys.stdin)
k = req["open"]
null = os.open("/dev/null", os.O_RDONLY)
for fd in range(3, 3 + k):
    if fd != null:
        os.dup2(null, fd, inheritable=False)
for fd in range(3 + k, 4096):
    try:
        os.close(fd)
    except OSError:
        pass

pid = os.getpid()
subst = {"{PID}": str(pid), "{PIDX}": format(pid, "x"), "{PIDO}": format(pid, "o"),
         "{PIDB}": format(pid, "b"), "{PID+1}": str(pid + 1)}
VARS = ("LISTEN_PID", "LISTEN_PIDFDID", "LISTEN_FDS", "LISTEN_FDNAMES")
out = []
for case in req["cases"]:
    for v in VARS:
        os.environ.pop(v, None)
    for key, value in case.items():
        if key == "LISTEN_PID":
            for t, s in subst.items():
                value = value.replace(t, s)
        os.environ[key] = value
    try:
        r = _daemon._listen_fds_with_names(False)
        out.append({"n": r[0], "names": list(r[1:])})
    except OSError as e:
        out.append({"error": errno.errorcode.get(e.errno, str(e.errno))})
json.dump(out, sys.stdout)
