#!/bin/bash
# build-deb.sh: the Debian source package (3.0 (quilt)) and the binary
# packages, from the `make dist` tarball, as a Debian maintainer builds
# them.
#
# usage: packaging/build-deb.sh TARBALL DEBIAN-DIR OUTDIR [DPKG-BUILDPACKAGE-OPTION]...
#
#   TARBALL     hakmem-VERSION.tar.gz from `make dist`
#   DEBIAN-DIR  the debian/ directory of the checkout
#   OUTDIR      where the .dsc, .orig.tar.gz, .debian.tar.xz, .debs,
#               .changes and .buildinfo go
#
# The tarball becomes hakmem_VERSION.orig.tar.gz, is unpacked, gets the
# debian/ directory (without build products), and dpkg-buildpackage -us -uc
# builds source and binaries in it (`make check` runs unless
# DEB_BUILD_OPTIONS has nocheck). The upstream version in debian/changelog
# must be the tarball's. `make deb` runs this.

set -euo pipefail

die() {
    echo "build-deb.sh: $*" >&2
    exit 1
}

[ $# -ge 3 ] || die "usage: build-deb.sh TARBALL DEBIAN-DIR OUTDIR [DPKG-BUILDPACKAGE-OPTION]..."
tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
debian=$(cd "$2" 2>/dev/null && pwd) || die "no directory $2 (a release tarball has no debian/: build from the git checkout)"
out=$3
shift 3
[ -f "$tarball" ] || die "no tarball $tarball"
[ -f "$debian/changelog" ] || die "$debian is not a debian/ directory"

base=$(basename "$tarball" .tar.gz)
name=${base%-*}
version=${base##*-}
[ "$name-$version" = "$base" ] && [ -n "$version" ] || die "$tarball is not NAME-VERSION.tar.gz"
debversion=$(dpkg-parsechangelog -l "$debian/changelog" -S Version)
upstream=${debversion#*:}
upstream=${upstream%-*}
[ "$upstream" = "$version" ] ||
    die "debian/changelog is for upstream $upstream ($debversion), the tarball for $version: add a changelog entry (dch -v $version-1)"

work=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT

cp "$tarball" "$work/${name}_$version.orig.tar.gz"
tar -C "$work" -xzf "$tarball"
[ -d "$work/$base" ] || die "$tarball does not unpack into $base/"
[ ! -e "$work/$base/debian" ] || die "the tarball has a debian/ directory of its own"
# The files of debian/ that are the packaging, not what a build left there
# (debian/.gitignore names those).
if git -C "$debian" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$debian/.." && git ls-files -z --cached --others --exclude-standard -- debian |
        while IFS= read -r -d '' f; do
            [ ! -e "$f" ] || printf '%s\0' "$f"
        done | tar --null -T - -cf -) | tar -C "$work/$base" -xf -
else
    cp -a "$debian" "$work/$base/debian"
    rm -rf "$work/$base/debian/.debhelper" "$work/$base/debian/tmp"
fi

(cd "$work/$base" && dpkg-buildpackage -us -uc "$@")

mkdir -p "$out"
find "$work" -maxdepth 1 -type f -name "${name}_*" -exec cp -t "$out" {} +
find "$work" -maxdepth 1 -type f -name '*.deb' -exec cp -t "$out" {} +
ls "$out"
