#!/usr/bin/env bash
# Builds the Debian package: dist/hanode_<version>_amd64.deb (make package).
#
#   VERSION   hanode's version (default: git describe); the package's version
#             is derived from it: a leading "v" dropped, "-" written "+", and
#             "0~git" put before one that does not start with a digit
#   DIST      where the .deb goes (default: dist)
#   GO        the go command (default: go)
#
# nfpm (packaging/nfpm.yaml) runs as a Go tool at a pinned version: the first
# run downloads and compiles it (about a minute and a half on 2 cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO="${GO:-go}"
NFPM="github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0"
version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
dist="${DIST:-dist}"

pkgver="${version#v}"
case "$pkgver" in
  [0-9]*) ;;
  *) pkgver="0~git$pkgver" ;;
esac
pkgver="${pkgver//-/+}"

build=$(mktemp -d "${TMPDIR:-/tmp}/hanode-pkg.XXXXXX")
trap 'rm -rf "$build"' EXIT

echo "package: building hanode $version (static, linux/amd64)"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 "$GO" build -trimpath -ldflags "-s -w -X main.version=$version" \
  -o "$build/hanode" ./cmd/hanode

echo "package: man pages"
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}" \
  "$build/hanode" gen-man "$build/man"
gzip -9n "$build"/man/*.1

# The unit names /usr/local/bin/hanode (a binary installed by hand); the
# package installs /usr/bin/hanode.
sed 's|^ExecStart=/usr/local/bin/hanode |ExecStart=/usr/bin/hanode |' etc/systemd/hanode.service >"$build/hanode.service"
if ! grep -q '^ExecStart=/usr/bin/hanode ' "$build/hanode.service"; then
  echo "package: etc/systemd/hanode.service has no 'ExecStart=/usr/local/bin/hanode ...' line to point at /usr/bin/hanode" >&2
  exit 1
fi

mkdir -p "$dist"
target="$dist/hanode_${pkgver}_amd64.deb"
echo "package: nfpm ($NFPM)"
HANODE_PKG_VERSION="$pkgver" HANODE_PKG_BUILD="$build" \
  "$GO" run "$NFPM" package --config packaging/nfpm.yaml --packager deb --target "$target"
echo "package: $target"
