#!/bin/sh
# Build localhost/busybox:pod-runner, the small shell image of the tests,
# from Debian's busybox-static (no registry is reachable here): /bin/busybox
# and a symlink per applet, at the applet's path in Alpine (it stands in for
# Alpine's image too).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
busybox=${BUSYBOX:-/bin/busybox}
name=${1:-localhost/busybox:pod-runner}
# The image has no libc: a dynamically linked busybox would not start.
if ldd "$busybox" >/dev/null 2>&1; then
    echo "$busybox is dynamically linked: install Debian's busybox-static" >&2
    exit 1
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
chmod 0755 "$rootfs"
mkdir -p "$rootfs/bin" "$rootfs/sbin" "$rootfs/usr/bin" "$rootfs/usr/sbin" "$rootfs/etc" "$rootfs/root" "$rootfs/tmp" "$rootfs/workspace"
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
# Each applet where Alpine has it (/usr/bin/env for `#!/usr/bin/env ash`).
for applet in $("$busybox" --list-full); do
    [ "${applet##*/}" = busybox ] || ln -s /bin/busybox "$rootfs/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"

"$here/../mkimage.sh" "$name" "$rootfs" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'CMD ["/bin/sh"]'
# `busybox` (the short name the bundled example and Tekton's examples use)
# resolves to localhost/busybox:latest (hack/podman/registries.conf).
podman tag "$name" "${name%%:*}:latest"
