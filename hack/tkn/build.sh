#!/bin/sh
# build.sh VERSION OUT: builds the Tekton CLI (tkn) at VERSION into OUT, from
# its module as the Go module proxy serves it. `go install …@VERSION` refuses
# the module (its go.mod has replace directives), so the module directory is
# copied out of the module cache and built there, with its own go.sum.
set -eu
version=$1 out=$2
go=${GO:-go}
dir=$(cd / && GOFLAGS= $go mod download -json "github.com/tektoncd/cli@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "build.sh: github.com/tektoncd/cli@$version: no module directory" >&2; exit 1; }
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp -r "$dir/." "$src"
chmod -R u+w "$src"
mkdir -p "$(dirname "$out")"
cd "$src"
GOFLAGS=-mod=mod $go build -trimpath -ldflags "-X github.com/tektoncd/cli/pkg/cmd/version.clientVersion=$version" -o "$out.tmp" ./cmd/tkn
mv "$out.tmp" "$out"
