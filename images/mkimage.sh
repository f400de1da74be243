#!/bin/sh
# mkimage.sh NAME ROOTFS [CHANGE...]: import the directory ROOTFS as the local
# image NAME (podman import of a tarball: no registry, no base image); each
# CHANGE is a Dockerfile instruction (`ENTRYPOINT [...]`, `ENV ...`).
# Incremental: the image carries a hash of its content and changes as a
# label, and is left alone while that hash stays the same.
# Uses the podman configuration the caller set (CONTAINERS_CONF, ...).
set -eu
name=$1 rootfs=$2
shift 2

tarball=$(mktemp)
trap 'rm -f "$tarball"' EXIT
# A reproducible tarball, so that the same content hashes the same.
tar -C "$rootfs" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -cf "$tarball" .
hash=$( { sha256sum <"$tarball"; printf '%s\n' "$@"; } | sha256sum | cut -c1-32)

label=dev.pod-runner.content
if have=$(podman image inspect --format "{{index .Labels \"$label\"}}" "$name" 2>/dev/null) &&
   [ "$have" = "$hash" ]; then
    echo "$name: up to date"
    exit 0
fi

# Turn each CHANGE into `--change CHANGE`, keeping its spaces.
n=$#
set -- "$@" --change "LABEL $label=$hash"
while [ "$n" -gt 0 ]; do
    c=$1
    shift
    set -- "$@" --change "$c"
    n=$((n - 1))
done
podman import --quiet "$@" "$tarball" "$name" >/dev/null
echo "$name: built"
