#!/bin/sh
# build.sh BINARY [NAME]: build localhost/pod-runner:dev, the image of the
# init and supervisor containers, holding the static in-pod binary at
# /pod-runner (podlayout.ImageBinary) and nothing else but /tmp.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
binary=$1
name=${2:-localhost/pod-runner:dev}

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
chmod 0755 "$rootfs"
mkdir -p "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
cp "$binary" "$rootfs/pod-runner"
chmod 0755 "$rootfs/pod-runner"

"$here/../mkimage.sh" "$name" "$rootfs" 'ENTRYPOINT ["/pod-runner"]'
