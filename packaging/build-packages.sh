#!/bin/bash
# build-packages.sh: build the hakmem packages from the release tarball,
# lint them, install the Debian ones, try them from the installed files
# only, and purge them.
#
# usage: packaging/build-packages.sh        (as root, on Debian 12)
#
# Run from anywhere in a checkout whose build dependencies are installed
# (packaging/ci-deps.txt has the list). The checkout itself is never
# built in: its tracked and new files (not the ignored ones, such as an
# in-tree build's) are copied into a temporary directory. The results go
# to packaging/out/: the tarball, the Debian source package and .debs with
# their .changes and .buildinfo, and the RPMs in packaging/out/rpm/ with
# hakmem-build-key.asc, the public half of the key that signed them.
#
#  1. autoreconf, configure, make dist: hakmem-VERSION.tar.gz, which must
#     hold hakmem.spec at its top and no debian/.
#  2. packaging/build-deb.sh: the tarball as hakmem_VERSION.orig.tar.gz,
#     debian/ beside it, dpkg-buildpackage -us -uc: the 3.0 (quilt) source
#     package and the .debs (runs `make check` unless DEB_BUILD_OPTIONS has
#     nocheck); then lintian --pedantic -I -E on the .changes (source and
#     binaries): any tag that is not overridden fails. The overrides, each
#     with its reason in debian/, are shown.
#  3. rpmbuild -ta --nodeps on the tarball (%check unless nocheck), with
#     rpm/macros.fedora; rpmsign --addsign with a throwaway OpenPGP key
#     made for the run, and rpm -K, with that key imported into a
#     temporary rpm database, must verify every package; then rpmlint with
#     its default configuration (any error fails but the one false
#     positive rpm/hakmem.spec.in explains, while its premise holds) and
#     with rpm/rpmlint.toml, Fedora's profile (any error fails).
#  4. apt-get install of libhakmem0, libhakmem-dev and hakmem, then, in a
#     temporary directory: hakmem-run --version (the packages' upstream
#     version, a Debian revision allowed), the wrapper free of any
#     multiarch path, real programs under hakmem-run with their output
#     compared to plain runs (debian/tests/preload), man -w for both
#     pages, the bash completion and the systemd example in place, a C and
#     a new/delete-only C++ program built with pkg-config and run
#     (debian/tests/build-link).
#  5. apt-get purge of the three; nothing named *hakmem* may be left
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
for tool in dpkg-buildpackage lintian rpmbuild rpmsign rpmlint rpm2cpio cpio readelf gpg gpg-agent gpgconf \
    gpg-connect-agent apt-get man pkg-config; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found: install the packages in packaging/ci-deps.txt"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-packages.XXXXXX")
installed=no
# gpg starts a gpg-agent for the throwaway signing key's home (below), which
# would outlive the run. stop_agent tells it to stop and waits for it to be
# gone (it exits on its next tick, within seconds).
stop_agent() {
    local agent
    [ -d "$work/gnupg" ] || return 0
    agent=$(gpg-connect-agent --homedir "$work/gnupg" --no-autostart 'getinfo pid' /bye 2>/dev/null |
        sed -n 's/^D \([0-9][0-9]*\)$/\1/p') || true
    gpgconf --homedir "$work/gnupg" --kill all >/dev/null 2>&1 || true
    if [ -n "$agent" ]; then
        timeout 30 tail --pid="$agent" -s 0.1 -f /dev/null || true
    fi
    gpgconf --homedir "$work/gnupg" --remove-socketdir >/dev/null 2>&1 || true
}
cleanup() {
    if [ "$installed" = yes ]; then
        apt-get purge -y -q "${debs[@]}" >/dev/null 2>&1 || true
    fi
    stop_agent
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
step "the release tarball: make dist"
copy_tree "$work/src"
(
    cd "$work/src"
    autoreconf -fi
    ./configure -q
    make dist
) >"$out/make-dist.log" 2>&1 || {
    tail -n 40 "$out/make-dist.log"
    die "make dist failed; the whole log is $out/make-dist.log"
}
version=$(sed -n 's/^PACKAGE_VERSION = //p' "$work/src/Makefile")
tarball=$work/src/hakmem-$version.tar.gz
[ -f "$tarball" ] || die "make dist made no $(basename "$tarball")"
tar -tzf "$tarball" >"$work/tarball.list"
grep -qx "hakmem-$version/hakmem.spec" "$work/tarball.list" || die "the tarball has no hakmem.spec at its top"
! grep -q "^hakmem-$version/debian/" "$work/tarball.list" || die "the tarball has a debian/ directory"
cp "$tarball" "$out/"
echo "$(basename "$tarball"): $(grep -vc '/$' "$work/tarball.list") files, hakmem.spec at the top"

# ---------------------------------------------------------------------------
step "Debian packages: packaging/build-deb.sh (dpkg-buildpackage -us -uc)"
bash "$top/packaging/build-deb.sh" "$tarball" "$work/src/debian" "$out" --jobs-try=auto \
    >"$out/dpkg-buildpackage.log" 2>&1 || {
    tail -n 80 "$out/dpkg-buildpackage.log"
    die "dpkg-buildpackage failed; the whole log is $out/dpkg-buildpackage.log"
}
grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' "$out/dpkg-buildpackage.log" || true
grep -E '^dpkg-source: info: (building|using source format)' "$out/dpkg-buildpackage.log" || true
changes=$(find "$out" -maxdepth 1 -name 'hakmem_*.changes' | head -n 1)
[ -n "$changes" ] || die "no .changes file"
dsc=$(find "$out" -maxdepth 1 -name 'hakmem_*.dsc' | head -n 1)
[ -n "$dsc" ] || die "no .dsc file: the source package was not built"
grep -qx 'Format: 3.0 (quilt)' "$dsc" || die "$(basename "$dsc") is not 3.0 (quilt)"

step "lintian --pedantic -I -E --show-overrides $(basename "$changes")"
lintian_rc=0
lintian --pedantic -I -E --show-overrides --tag-display-limit 0 "$changes" \
    >"$out/lintian.txt" 2>&1 || lintian_rc=$?
# lintian complains about running as root on stderr; that is not a finding.
grep -v '^running with root privileges' "$out/lintian.txt" || true
if [ "$lintian_rc" -ne 0 ] || grep -q '^[EWIPX]: ' "$out/lintian.txt"; then
    die "lintian reported tags that are not overridden"
fi
echo "lintian: no tags but the overrides above ($(grep -c '^O: ' "$out/lintian.txt" || true))"

# ---------------------------------------------------------------------------
step "RPM packages: rpmbuild -ta --nodeps $(basename "$tarball")"
rpmtop=$work/rpmbuild
mkdir -p "$rpmtop"
rpmbuild_check=()
[ "$nocheck" = no ] || rpmbuild_check=(--nocheck)
# --nodeps: Debian's rpm database is empty, so BuildRequires cannot be
# checked. rpm/macros.fedora: debuginfo packages, execute bits kept on the
# library and a packager, as Fedora's redhat-rpm-config gives. brp-compress
# starts with #!/bin/sh but needs bash (read -d); where /bin/sh is dash it
# would leave the manual pages uncompressed.
rpmbuild -ta --nodeps "${rpmbuild_check[@]}" \
    --load "$top/rpm/macros.fedora" \
    --define "_topdir $rpmtop" \
    --define '__brp_compress bash %{_rpmconfigdir}/brp-compress %{?_prefix}' \
    "$tarball" >"$out/rpmbuild.log" 2>&1 || {
    tail -n 80 "$out/rpmbuild.log"
    die "rpmbuild failed; the whole log is $out/rpmbuild.log"
}
grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' "$out/rpmbuild.log" || true
find "$rpmtop/RPMS" "$rpmtop/SRPMS" -name '*.rpm' -exec cp -t "$out/rpm" {} +
tar -xzOf "$tarball" "hakmem-$version/hakmem.spec" >"$out/rpm/hakmem.spec"
for sub in libhakmem0 hakmem-common hakmem-devel hakmem-run hakmem-debuginfo; do
    ls "$out/rpm/$sub-$version"-*.rpm >/dev/null 2>&1 || die "rpmbuild made no $sub package"
done

# ---------------------------------------------------------------------------
# A distribution's build system signs the packages with the distribution's
# key (Fedora's koji, openSUSE's OBS); the spec has no say in it. Here a
# throwaway key, made for this run in a temporary GNUPGHOME and never kept,
# signs them, to show that they take a signature and that rpm verifies it.
# rpmlint's SignatureCheck runs `rpm -Kv` on each package: no-signature if
# that exits 0 with no "Signature, key ID" line, unknown-key if the key is
# not in rpm's database (NOKEY), invalid-signature if it does not verify.
# So the public key goes into a temporary rpm database, and rpm -K and
# rpmlint run with a HOME whose .rpmmacros points %_dbpath at it; the
# system's rpm database is left alone. The public key is left beside the
# packages, to check them again later.
step "sign the RPMs: rpmsign --addsign with a throwaway key"
gnupg=$work/gnupg
rpmhome=$work/rpmhome
mkdir -m 700 "$gnupg"
mkdir -p "$rpmhome" "$work/rpmdb"
printf '%%_dbpath %s\n' "$work/rpmdb" >"$rpmhome/.rpmmacros"
signlog=$out/rpmsign.log
: >"$signlog"
sign_failed() {
    cat "$signlog"
    die "$1; the whole log is $signlog"
}
gpg --homedir "$gnupg" --batch --passphrase '' \
    --quick-gen-key "hakmem throwaway build key <hakmem@example.org>" rsa3072 sign 1d \
    >>"$signlog" 2>&1 || sign_failed "gpg could not make the key"
fpr=$(gpg --homedir "$gnupg" --batch --with-colons --list-secret-keys 2>>"$signlog" |
    awk -F: '$1 == "fpr" { print $10; exit }')
[ -n "$fpr" ] || sign_failed "gpg lists no secret key"
gpg --homedir "$gnupg" --batch --armor --export "$fpr" >"$out/rpm/hakmem-build-key.asc" 2>>"$signlog" ||
    sign_failed "gpg could not export the public key"
rpmsign --addsign --define "_gpg_path $gnupg" --define "_gpg_name $fpr" \
    --define "__gpg $(command -v gpg)" "$out"/rpm/*.rpm >>"$signlog" 2>&1 ||
    sign_failed "rpmsign failed"
{ HOME=$rpmhome rpm --initdb && HOME=$rpmhome rpm --import "$out/rpm/hakmem-build-key.asc"; } \
    >>"$signlog" 2>&1 || sign_failed "rpm could not import the public key"
stop_agent
# rpm -Kv names the key by the last 8 hex digits of its fingerprint.
keyid=$(printf '%s\n' "$fpr" | tr 'A-F' 'a-f' | sed 's/.*\(........\)$/\1/')
for rpm in "$out"/rpm/*.rpm; do
    HOME=$rpmhome rpm -Kv "$rpm" >"$work/rpm-K" 2>&1 || {
        cat "$work/rpm-K"
        die "rpm -K does not verify $(basename "$rpm")"
    }
    grep -q "Signature, key ID $keyid: OK\$" "$work/rpm-K" ||
        die "$(basename "$rpm") has no signature by the key $keyid that verifies"
    echo "$(basename "$rpm"): signed by $keyid, rpm -K: OK"
done

# The one error rpmlint's default configuration still gives, explained in
# the spec's opening comment: BinariesCheck reports the .debug file
# find-debuginfo made of libhakmem.so.0 as a shared library without
# dependency information, because eu-strip leaves its .dynamic section
# empty (NOBITS). Exactly this line is let through, and only while the
# .debug file in the package really has no dynamic section.
rpmlint_false_positive='^hakmem-debuginfo\.[a-z0-9_]+: E: shared-library-without-dependency-information /usr/lib/debug/usr/lib(64)?/libhakmem\.so\.0(\.[0-9]+)*-[^ /]+\.debug$'
step "rpmlint (its default configuration)"
rpmlint_rc=0
HOME=$rpmhome XDG_CONFIG_HOME=$work/no-config rpmlint "$out"/rpm/*.rpm "$out/rpm/hakmem.spec" \
    >"$out/rpmlint-default.txt" 2>&1 || rpmlint_rc=$?
cat "$out/rpmlint-default.txt"
if grep ': E: ' "$out/rpmlint-default.txt" | grep -Ev "$rpmlint_false_positive" >"$work/rpmlint-new"; then
    cat "$work/rpmlint-new"
    die "rpmlint (default configuration) found errors the spec does not explain"
fi
grep -E "$rpmlint_false_positive" "$out/rpmlint-default.txt" | sed 's/.* //' >"$work/rpmlint-debug-files" || true
if [ -s "$work/rpmlint-debug-files" ]; then
    mkdir "$work/debuginfo"
    rpm2cpio "$out/rpm/hakmem-debuginfo-$version"-*.rpm | (cd "$work/debuginfo" && cpio -idm --quiet)
    while IFS= read -r f; do
        dynamic=$(LC_ALL=C readelf -d "$work/debuginfo$f")
        grep -qx 'There is no dynamic section in this file.' <<<"$dynamic" ||
            die "$f has a dynamic section: rpmlint's shared-library-without-dependency-information is no false positive"
        echo "$f: no dynamic section (readelf -d), as find-debuginfo makes it"
    done <"$work/rpmlint-debug-files"
fi
if grep -E '^(E|Error|Traceback)' "$out/rpmlint-default.txt"; then
    die "rpmlint (default configuration) failed (status $rpmlint_rc)"
fi

step "rpmlint -c rpm/rpmlint.toml (Fedora's profile)"
rpmlint_rc=0
HOME=$rpmhome XDG_CONFIG_HOME=$work/no-config rpmlint -c "$top/rpm/rpmlint.toml" "$out"/rpm/*.rpm "$out/rpm/hakmem.spec" \
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
# The upstream part of a package's version: 0.2.0 of 1:0.2.0-1.
upstream_of() {
    local v
    v=$(dpkg-query -W -f '${Version}' "$1")
    v=${v#*:}
    printf '%s\n' "${v%-*}"
}
wrapper_version=$(upstream_of hakmem)
library_version=$(upstream_of libhakmem0)
[ "$wrapper_version" = "$version" ] || die "the hakmem package is $wrapper_version, the tarball $version"

echo "\$ hakmem-run --version"
hakmem-run --version | tee version.out
grep -qxF "hakmem-run (hakmem) $wrapper_version" version.out ||
    die "hakmem-run --version does not say hakmem-run (hakmem) $wrapper_version"
grep -qE "^library: libhakmem\.so\.0 \(/.*\): hakmem $library_version\$" version.out ||
    die "hakmem-run --version does not report libhakmem.so.0 at version $library_version"

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
if grep -n "$multiarch" /usr/bin/hakmem-run; then
    die "/usr/bin/hakmem-run names $multiarch: it is not the same on every architecture"
fi
[ "$(dpkg-query -W -f '${Architecture} ${Multi-Arch}' hakmem)" = "all foreign" ] ||
    die "hakmem is not Architecture: all, Multi-Arch: foreign"
echo "hakmem: Architecture: all, Multi-Arch: foreign; /usr/bin/hakmem-run names no multiarch directory"
[ -f /usr/share/doc/libhakmem0/README.md.gz ] || [ -f /usr/share/doc/libhakmem0/README.md ] ||
    die "README.md is not in /usr/share/doc/libhakmem0"
echo "installed: /usr/share/doc/libhakmem0/README.md*"

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
