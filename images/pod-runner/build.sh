#!/bin/sh
# build.sh BINARY PATH [NAME]: build localhost/pod-runner:dev, the image of
# the init and supervisor containers, holding the static in-pod binary at
# PATH (podlayout.ImageBinary) and nothing else but /tmp.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
binary=$1
path=$2
name=${3:-localhost/pod-runner:dev}

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
chmod 0755 "$rootfs"
mkdir -p "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
mkdir -p "$rootfs$(dirname "$path")"
cp "$binary" "$rootfs$path"
chmod 0755 "$rootfs$path"

"$here/../mkimage.sh" "$name" "$rootfs" "ENTRYPOINT [\"$path\"]"
