#!/usr/bin/env bash
# Run a command inside an arm64 Debian root through qemu-user (binfmt_misc), as root.
#   tools/pi_chroot.sh ROOT CPUINFO COMMAND [ARG...]
# The mounts live in a private mount namespace, so they vanish when the command ends,
# even if it crashes: nothing is left mounted on the host.
# CPUINFO is bind-mounted over the root's /proc/cpuinfo: LiteRT (through the cpuinfo
# library) segfaults while creating an interpreter when it reads the host's x86 one.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 ROOT CPUINFO COMMAND [ARG...]" >&2
    exit 2
fi
exec unshare --mount --propagation private -- bash -c '
    set -euo pipefail
    root=$1 cpuinfo=$2
    shift 2
    mount -t proc proc "$root/proc"
    mount --bind "$cpuinfo" "$root/proc/cpuinfo"
    mount --rbind /dev "$root/dev"
    mount --rbind /sys "$root/sys"  # cpuinfo reads the possible/present CPU lists there
    exec chroot "$root" "$@"
' pi_chroot "$@"
