#!/bin/sh
# build.sh IMAGE TARBALL: the controller's image, built with ko, offline,
# written to TARBALL (a docker-archive for `ctr images import`).
# ko needs a base image and there is no registry: the base is an empty
# rootfs (/tmp only, user 65532) made with mkimage.sh in the private podman
# storage, which ko reads as ko.local/... through podman's Docker-compatible
# API, served for the length of the build. Needs GO, KO (pkg@version) and the
# podman configuration the caller set (CONTAINERS_CONF, ...).
set -eu
image=$1 tarball=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
base=ko.local/pod-runner-base:dev

rootfs=$(mktemp -d)
sockdir=$(mktemp -d)
svc=
cleanup() {
    [ -n "$svc" ] && kill "$svc" 2>/dev/null || true
    rm -rf "$rootfs" "$sockdir"
}
trap cleanup EXIT
chmod 0755 "$rootfs"
mkdir -p "$rootfs/tmp" && chmod 1777 "$rootfs/tmp"
"$root/images/mkimage.sh" "$base" "$rootfs" 'USER 65532:65532'

podman system service --time=0 "unix://$sockdir/docker.sock" &
svc=$!
i=0
until [ -S "$sockdir/docker.sock" ]; do
    i=$((i + 1))
    [ "$i" -gt 100 ] && { echo "podman system service did not start" >&2; exit 1; }
    sleep 0.1
done

mkdir -p "$(dirname "$tarball")"
cd "$root"
DOCKER_HOST="unix://$sockdir/docker.sock" KO_DEFAULTBASEIMAGE=$base KO_DOCKER_REPO=${image%:*} \
    $GO run "$KO" build --bare --push=false --tags "${image##*:}" --platform "linux/$($GO env GOARCH)" \
    --tarball "$tarball" ./cmd/injector
