#!/bin/bash
# run-units.sh UNITDIR TARGET -- CHECK_CMD...
# Boots systemd with UNITDIR, runs CHECK_CMD on the host (with SYSTEMCTL set to reach the
# namespace's systemctl, NSENTER to run any command there), shuts systemd down, removes the
# cgroups. Exit status: CHECK_CMD's.
HERE=$(cd "$(dirname "$0")" && pwd)
UNITS=$1; TARGET=$2; shift 3
for t in basic default local-fs multi-user paths shutdown slices sockets sysinit timers; do
  [ -f "$UNITS/$t.target" ] || printf '[Unit]\nDescription=stub %s\n' $t > "$UNITS/$t.target"; done
rm -f "$UNITS/.cg" "$UNITS/.unshare"
script -qfec "$HERE/boot.sh $UNITS $TARGET" "$UNITS/boot.log" >/dev/null 2>&1 </dev/null & SCRIPT=$!
SD=""
for i in $(seq 300); do
  [ -s "$UNITS/.unshare" ] && SD=$(pgrep -P "$(cat "$UNITS/.unshare")" 2>/dev/null | head -1)
  [ -n "$SD" ] && [ -S /proc/$SD/root/run/systemd/private ] && break; SD=""; sleep 0.02; done
if [ -z "$SD" ]; then echo "systemd did not come up"; kill $SCRIPT 2>/dev/null; exit 3; fi
export NSENTER="nsenter -t $SD -m -p" SYSTEMCTL="nsenter -t $SD -m -p systemctl"
$SYSTEMCTL is-system-running --wait >/dev/null 2>&1
"$@"; rc=$?
$SYSTEMCTL --force exit 0 >/dev/null 2>&1; wait $SCRIPT
CG=$(cat "$UNITS/.cg" 2>/dev/null)
if [ -n "$CG" ]; then
  find /sys/fs/cgroup/unified/$CG -depth -type d -exec rmdir {} \; 2>/dev/null
  rmdir /sys/fs/cgroup/systemd/$CG 2>/dev/null
fi
exit $rc
