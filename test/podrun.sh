#!/bin/bash
# test/podrun.sh ARGS...: `podman run --rm ARGS...` for test/containers.test.ts, with the workarounds a
# sandboxed host needs, each applied only where its cause is present (on a normal podman host this is
# plain `podman run --rm`). Exit status: podman's.
# - cgroups v1 and v2 mixed (hybrid), which crun refuses: podman runs in a private mount and cgroup
#   namespace with cgroup2 mounted at /sys/fs/cgroup;
# - no D-Bus (a systemd in a container), so podman under a systemd unit cannot create a scope:
#   --cgroups=disabled unless ARGS choose (the container then stays in the caller's cgroup);
# - no CAP_SYS_RESOURCE, so podman's default rlimits (above the hard limit) cannot be set: nofile and
#   nproc capped at 16384 unless ARGS set them.
# With a cgroup of the container's own (ARGS give --cgroups=split, enabled or no-conmon):
# - crun's eBPF device filter for the new cgroup is refused here (crun then raises RLIMIT_MEMLOCK and
#   retries, which needs CAP_SYS_RESOURCE): --privileged, under which crun loads no filter;
# - cgroup2 without the pids controller (hybrid: v1 holds it): --pids-limit=-1, no limit to set.
# PODRUN_STATE=DIR keeps podman's state (--root, --runroot, --tmpdir) in DIR: under a systemd of private
# namespaces, whose fresh /run makes podman take the host's state for a rebooted machine's and reset it.
set -u
global=()
if [ -n "${PODRUN_STATE:-}" ]; then
  global=(--root "$PODRUN_STATE/root" --runroot "$PODRUN_STATE/run" --tmpdir "$PODRUN_STATE/tmp")
fi
extra=()
[ -S /run/dbus/system_bus_socket ] || [[ " $* " == *" --cgroups"* ]] || extra+=(--cgroups=disabled)
caps=$(awk '/^CapEff/ {print $2}' /proc/self/status)
if (( (0x$caps >> 24 & 1) == 0 )) && [[ " $* " != *" --ulimit nofile"* ]]; then
  extra+=(--ulimit nofile=16384:16384 --ulimit nproc=16384:16384)
fi
if [[ " $* " =~ " --cgroups="(split|enabled|no-conmon)" " ]]; then
  (( (0x$caps >> 24 & 1) == 1 )) || extra+=(--privileged)
  cat /sys/fs/cgroup/cgroup.controllers /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null | grep -qw pids ||
    extra+=(--pids-limit=-1)
fi
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] && [ -d /sys/fs/cgroup/unified ]; then
  exec unshare --mount --cgroup --propagation private /bin/sh -c \
    'umount -l /sys/fs/cgroup && mount -n -t cgroup2 cgroup2 /sys/fs/cgroup && exec podman "$@"' \
    podrun "${global[@]}" run --rm "${extra[@]}" "$@"
fi
exec podman "${global[@]}" run --rm "${extra[@]}" "$@"
