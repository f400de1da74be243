#!/bin/sh
# build.sh BINARY STEP_BINARY PATH [NAME]: build localhost/pod-runner:dev,
# the image of the init and supervisor containers, holding the static
# in-pod binary at PATH (podlayout.ImageBinary), the step binary (-tags
# steponly) beside it as PATH-step, which the init container installs for
# the step containers, and nothing else but /tmp.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
binary=$1
step=$2
path=$3
name=${4:-localhost/pod-runner:dev}

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
chmod 0755 "$rootfs"
mkdir -p "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
mkdir -p "$rootfs$(dirname "$path")"
cp "$binary" "$rootfs$path"
cp "$step" "$rootfs$path-step"
chmod 0755 "$rootfs$path" "$rootfs$path-step"

"$here/../mkimage.sh" "$name" "$rootfs" "ENTRYPOINT [\"$path\"]"
