#!/bin/bash
# build-packages.sh: build the hakmem packages, lint them, install the
# Debian ones, try them from the installed files only, and purge them.
#
# usage: packaging/build-packages.sh        (as root, on Debian 12)
#
# Run from anywhere in a checkout whose build dependencies are installed
# (packaging/ci-deps.txt has the list). The checkout itself is never
# built in: its tracked and new files (not the ignored ones, such as an
# in-tree build's) are copied into a temporary directory for each build.
# The results go to packaging/out/: the .debs, .changes and .buildinfo
# beside each other, and the RPMs in packaging/out/rpm/.
#
#  1. dpkg-buildpackage -us -uc -b (runs `make check` unless
#     DEB_BUILD_OPTIONS has nocheck), then lintian, showing every tag down
#     to pedantic ones: any E: or W: fails.
#  2. make dist, then rpmbuild -ba --nodeps from the tarball in a
#     temporary top directory (%check unless DEB_BUILD_OPTIONS has
#     nocheck), then rpmlint -c rpm/rpmlint.toml: any error fails.
#  3. apt-get install of libhakmem0, libhakmem-dev and hakmem, then, in a
#     temporary directory: hakmem-run --version, real programs under
#     hakmem-run with their output compared to plain runs
#     (debian/tests/preload), man -w for both pages, the bash completion
#     and the systemd example in place, a C and a new/delete-only C++
#     program built with pkg-config and run (debian/tests/build-link).
#  4. apt-get purge of the three; nothing named *hakmem* may be left
#     in /usr.
#
# Prints the package names, the contents of each package and the full
# lintian and rpmlint output. Exits 0 only if every step passed.

set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
out=$here/out
debs=(libhakmem0 libhakmem-dev hakmem)

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

step() {
    printf '\n=== %s\n' "$*"
}

die() {
    echo "build-packages.sh: $*" >&2
    exit 1
}

if [ ! -f "$top/debian/control" ] || [ ! -f "$top/rpm/hakmem.spec.in" ]; then
    die "$top is not a hakmem source tree"
fi
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs and purges packages)"
for tool in dpkg-buildpackage lintian rpmbuild rpmlint apt-get man pkg-config; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found: install the packages in packaging/ci-deps.txt"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-packages.XXXXXX")
installed=no
cleanup() {
    if [ "$installed" = yes ]; then
        apt-get purge -y -q "${debs[@]}" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# copy_tree DEST: the checkout's files without build products or .git.
copy_tree() {
    mkdir -p "$1"
    if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # Tracked files (as they are now, edits included) and new ones;
        # a tracked file deleted in the work tree is left out.
        git -C "$top" ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' f; do
                if [ -e "$top/$f" ] || [ -L "$top/$f" ]; then
                    printf '%s\0' "$f"
                fi
            done |
            tar -C "$top" --null -T - -cf - | tar -C "$1" -xf -
    else
        (cd "$top" && tar --exclude=./packaging/out -cf - .) | tar -C "$1" -xf -
    fi
}

nocheck=no
case " ${DEB_BUILD_OPTIONS:-} " in
    *" nocheck "*) nocheck=yes ;;
esac

rm -rf "$out"
mkdir -p "$out/rpm"

# ---------------------------------------------------------------------------
step "Debian packages: dpkg-buildpackage -us -uc -b"
copy_tree "$work/deb/hakmem"
(cd "$work/deb/hakmem" && dpkg-buildpackage -us -uc -b --jobs-try=auto) \
    >"$out/dpkg-buildpackage.log" 2>&1 || {
    tail -n 80 "$out/dpkg-buildpackage.log"
    die "dpkg-buildpackage failed; the whole log is $out/dpkg-buildpackage.log"
}
grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' "$out/dpkg-buildpackage.log" || true
find "$work/deb" -maxdepth 1 -type f \( -name '*.deb' -o -name '*.changes' -o -name '*.buildinfo' \) \
    -exec mv -t "$out" {} +
changes=$(find "$out" -maxdepth 1 -name '*.changes' | head -n 1)
[ -n "$changes" ] || die "no .changes file"

step "lintian $(basename "$changes")"
lintian_rc=0
lintian --display-info --pedantic --fail-on error,warning "$changes" >"$out/lintian.txt" 2>&1 || lintian_rc=$?
# lintian complains about running as root on stderr; that is not a finding.
grep -v '^running with root privileges' "$out/lintian.txt" || true
if [ "$lintian_rc" -ne 0 ] || grep -q '^[EW]: ' "$out/lintian.txt"; then
    die "lintian found errors or warnings"
fi
echo "lintian: no errors, no warnings"

# ---------------------------------------------------------------------------
step "RPM packages: make dist, rpmbuild -ba --nodeps"
copy_tree "$work/rpm-src"
(
    cd "$work/rpm-src"
    autoreconf -fi
    ./configure -q
    make dist
) >"$out/make-dist.log" 2>&1 || {
    tail -n 40 "$out/make-dist.log"
    die "make dist failed; the whole log is $out/make-dist.log"
}
version=$(sed -n 's/^PACKAGE_VERSION = //p' "$work/rpm-src/Makefile")
tarball=$work/rpm-src/hakmem-$version.tar.gz
[ -f "$tarball" ] || die "make dist made no $(basename "$tarball")"

rpmtop=$work/rpmbuild
mkdir -p "$rpmtop/SOURCES" "$rpmtop/SPECS"
cp "$tarball" "$rpmtop/SOURCES/"
sed "s|@PACKAGE_VERSION@|$version|g" "$top/rpm/hakmem.spec.in" >"$rpmtop/SPECS/hakmem.spec"
rpmbuild_check=()
[ "$nocheck" = no ] || rpmbuild_check=(--nocheck)
# --nodeps: Debian's rpm database is empty, so BuildRequires cannot be
# checked. brp-compress starts with #!/bin/sh but needs bash (read -d);
# where /bin/sh is dash it would leave the manual pages uncompressed.
rpmbuild -ba --nodeps "${rpmbuild_check[@]}" \
    --define "_topdir $rpmtop" \
    --define '__brp_compress bash %{_rpmconfigdir}/brp-compress %{?_prefix}' \
    "$rpmtop/SPECS/hakmem.spec" >"$out/rpmbuild.log" 2>&1 || {
    tail -n 80 "$out/rpmbuild.log"
    die "rpmbuild failed; the whole log is $out/rpmbuild.log"
}
grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' "$out/rpmbuild.log" || true
find "$rpmtop/RPMS" "$rpmtop/SRPMS" -name '*.rpm' -exec cp -t "$out/rpm" {} +
cp "$rpmtop/SPECS/hakmem.spec" "$out/rpm/"

step "rpmlint -c rpm/rpmlint.toml"
rpmlint_rc=0
rpmlint -c "$top/rpm/rpmlint.toml" "$out"/rpm/*.rpm "$out/rpm/hakmem.spec" \
    >"$out/rpmlint.txt" 2>&1 || rpmlint_rc=$?
cat "$out/rpmlint.txt"
if [ "$rpmlint_rc" -ne 0 ] || grep -q ': E: ' "$out/rpmlint.txt"; then
    die "rpmlint found errors"
fi

# ---------------------------------------------------------------------------
step "packages built"
for deb in "$out"/*.deb; do
    # shellcheck disable=SC2016 # dpkg-deb's own ${field} syntax
    dpkg-deb --show --showformat='${Package} ${Version} ${Architecture}\n' "$deb"
done
for rpm in "$out"/rpm/*.rpm; do
    rpm -qp --queryformat '%{NAME} %{VERSION}-%{RELEASE} %|SOURCERPM?{%{ARCH}}:{src}|\n' "$rpm" 2>/dev/null
done
for deb in "$out"/*.deb; do
    step "dpkg -c $(basename "$deb")"
    dpkg -c "$deb"
done
for rpm in "$out"/rpm/*.rpm; do
    step "rpm -qlp $(basename "$rpm")"
    rpm -qlp "$rpm" 2>/dev/null
done

# ---------------------------------------------------------------------------
step "install: apt-get install ${debs[*]}"
before=$(find /usr -name '*hakmem*' | sort)
if [ -n "$before" ]; then
    echo "note: already in /usr before installing (left out of the final check):"
    echo "$before"
fi
debfiles=()
for p in "${debs[@]}"; do
    f=$(find "$out" -maxdepth 1 -name "${p}_*.deb" | head -n 1)
    [ -n "$f" ] || die "no ${p}_*.deb"
    debfiles+=("$f")
done
installed=yes
apt-get install -y -q "${debfiles[@]}"

step "the installed packages, from a scratch directory"
try=$work/try
mkdir -p "$try"
cd "$try"
pkgversion=$(dpkg-query -W -f '${Version}' hakmem)

echo "\$ hakmem-run --version"
hakmem-run --version | tee version.out
grep -qF "$pkgversion" version.out || die "hakmem-run --version does not say $pkgversion"

echo "\$ man -w hakmem-run"
man -w hakmem-run | tee man.out
echo "\$ man -w 7 hakmem"
man -w 7 hakmem | tee -a man.out
grep -qx /usr/share/man/man1/hakmem-run.1.gz man.out || die "hakmem-run(1) is not where man looks"
grep -qx /usr/share/man/man7/hakmem.7.gz man.out || die "hakmem(7) is not where man looks"

for f in /usr/share/bash-completion/completions/hakmem-run \
    /usr/share/doc/hakmem/examples/hakmem-service.conf; do
    [ -f "$f" ] || die "$f is not installed"
    echo "installed: $f"
done
echo "\$ bash -c '. /usr/share/bash-completion/completions/hakmem-run; complete -p hakmem-run'"
bash -c '. /usr/share/bash-completion/completions/hakmem-run && complete -p hakmem-run' ||
    die "the bash completion does not load"

# The autopkgtests use installed files only; run them here as autopkgtest
# would, each in a scratch directory of its own.
for t in preload build-link; do
    echo "\$ debian/tests/$t"
    mkdir "$try/$t"
    AUTOPKGTEST_TMP=$try/$t sh "$top/debian/tests/$t" || die "test $t failed"
done
cd /

# ---------------------------------------------------------------------------
step "purge: apt-get purge ${debs[*]}"
apt-get purge -y -q "${debs[@]}"
installed=no
for p in "${debs[@]}"; do
    if dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qv '^not-installed$'; then
        die "$p is still known to dpkg after purging"
    fi
done
after=$(find /usr -name '*hakmem*' | sort)
left=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed '/^$/d')
if [ -n "$left" ]; then
    echo "$left"
    die "files left in /usr after purging"
fi
echo "nothing of hakmem left in /usr"

step "all done: packaging/out/ has the packages, logs, lintian.txt and rpmlint.txt"
