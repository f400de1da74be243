#!/bin/sh
# Build localhost/debian:pod-runner, the general image that stands in for the
# ubuntu, bash, python, node, perl and git images Tekton's examples name
# (there is no registry to pull them from): a minimal Debian root filesystem
# made by mmdebstrap from Debian's own packages, through this machine's apt
# sources, with the bash image's docker-entrypoint.sh. Built again only when
# this script (its package list) or that one changes: the image carries
# their hash as a label.
# Uses the podman configuration the caller set (CONTAINERS_CONF, ...).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
name=${1:-localhost/debian:pod-runner}
suite=${DEBIAN_SUITE:-bookworm}
# What Tekton's examples run beyond a POSIX shell: bash, git, python3, node,
# perl, jq, curl and wget, ssh (git over ssh) and sshd (a git server in a
# sidecar), openssl, ps and nc; and ash (dash, Debian's Almquist shell) for
# the alpine/git scripts that ask for it.
packages=bash,coreutils,ca-certificates,curl,git,jq,nodejs,openssh-client,openssh-server,openssl,perl,procps,python3,wget,netcat-openbsd

label=dev.pod-runner.content
hash=$( { cat "$0" "$here/docker-entrypoint.sh"; echo "$suite"; } | sha256sum | cut -c1-32)
if have=$(podman image inspect --format "{{index .Labels \"$label\"}}" "$name" 2>/dev/null) &&
   [ "$have" = "$hash" ]; then
    echo "$name: up to date"
    exit 0
fi
command -v mmdebstrap >/dev/null || { apt-get update -q && apt-get install -y -q mmdebstrap; }

tarball=$(mktemp --suffix=.tar)
trap 'rm -f "$tarball"' EXIT
# minbase: Essential packages and apt's own; no documentation, no apt lists.
# sshd's /run/sshd is kept (--skip=cleanup/run) and its host keys are not:
# a sidecar makes its own, as in the alpine/git image. User nonroot (1000,
# HOME /home/nonroot) stands in for Tekton's alpine-git-nonroot image's.
mmdebstrap --quiet --variant=minbase --include="$packages" --skip=cleanup/run \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='mkdir -p "$1/workspace" && rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    --customize-hook='ln -s /bin/dash "$1/usr/bin/ash"' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_* && mkdir -p "$1/run/sshd"' \
    --customize-hook='chroot "$1" useradd --create-home --uid 1000 --shell /bin/sh nonroot' \
    --customize-hook="cp '$here/docker-entrypoint.sh' \"\$1/usr/local/bin/\" && chmod 0755 \"\$1/usr/local/bin/docker-entrypoint.sh\"" \
    "$suite" "$tarball"
podman import --quiet \
    --change "LABEL $label=$hash" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    "$tarball" "$name" >/dev/null
echo "$name: built ($(podman image inspect --format '{{.Size}}' "$name" | awk '{printf "%d MB", $1/1e6}'))"
