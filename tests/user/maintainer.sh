#!/bin/bash
# The packages and /etc/ld.so.preload (automake TAP test; issue 12,
# finding 6).
#
# Removing the library while /etc/ld.so.preload names it would leave every
# command printing a loader error. libhakmem0's prerm (debian/) and the
# RPM's %preun (rpm/hakmem.spec.in) refuse to remove it then, and only
# then: not for an upgrade, not for a commented entry, not for another
# library or a copy of hakmem outside /lib and /usr/lib. The prerm runs
# with DPKG_ROOT pointing at a scratch root (as dpkg --root does); the
# %preun is taken out of the spec and run on a scratch file. The systemd
# example ships in both packages' documentation.

# shellcheck source=tests/user/lib.sh
. "$(dirname "$0")/lib.sh"

prerm=$top/debian/libhakmem0.prerm
spec=$top/rpm/hakmem.spec.in
[ -r "$spec" ] || bail "cannot read $spec"
# The `make dist` tarball (what the RPM builds from) has no debian/.
debian=yes
if [ ! -d "$top/debian" ]; then
    debian=no
    echo "# no debian/ here (a make dist tree): the RPM's %preun only"
else
    [ -r "$prerm" ] || bail "cannot read $prerm"
fi

root=$tmp/root
mkdir -p "$root/etc"

# The %preun scriptlet, with the file it reads moved to the scratch root.
awk '/^%preun/ { on = 1; next } on && /^%/ { exit } on' "$spec" |
    sed "s|/etc/ld.so.preload|$root/etc/ld.so.preload|g" >"$tmp/preun.sh"
[ -s "$tmp/preun.sh" ] || bail "no %preun in $spec"

# case CONTENT|SHOULD-REFUSE
cases=(
    "|no"
    "/usr/lib/x86_64-linux-gnu/libhakmem.so.0|yes"
    "libhakmem.so.0|yes"
    "/lib/libhakmem.so.0|yes"
    "libm.so.6 /usr/lib/x86_64-linux-gnu/libhakmem.so.0|yes"
    "libm.so.6:libhakmem.so.0|yes"
    "# /usr/lib/x86_64-linux-gnu/libhakmem.so.0|no"
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2|no"
    "/opt/hakmem/lib/libhakmem.so.0|no"
)
for c in "${cases[@]}"; do
    content=${c%|*} want=${c##*|}
    if [ -z "$content" ]; then
        rm -f "$root/etc/ld.so.preload"
        what="no /etc/ld.so.preload"
    else
        printf '%s\n' "$content" >"$root/etc/ld.so.preload"
        what="/etc/ld.so.preload '$content'"
    fi
    if [ "$debian" = yes ]; then
        rc=0
        DPKG_ROOT=$root sh "$prerm" remove >"$tmp/prerm.out" 2>"$tmp/prerm.err" || rc=$?
        if [ "$want" = yes ]; then
            [ "$rc" -ne 0 ] || problem "prerm remove with $what: removed"
            grep -q 'ld.so.preload' "$tmp/prerm.err" || { problem "prerm remove with $what: no message"; show "$tmp/prerm.err"; }
        else
            [ "$rc" -eq 0 ] || { problem "prerm remove with $what: refused (status $rc)"; show "$tmp/prerm.err"; }
        fi
        rc=0
        DPKG_ROOT=$root sh "$prerm" upgrade 0.1.1 >/dev/null 2>&1 || rc=$?
        [ "$rc" -eq 0 ] || problem "prerm upgrade with $what: refused"
    fi
    rc=0
    sh "$tmp/preun.sh" 0 >/dev/null 2>"$tmp/preun.err" || rc=$?
    if [ "$want" = yes ]; then
        [ "$rc" -ne 0 ] || problem "%preun (erase) with $what: erased"
    else
        [ "$rc" -eq 0 ] || { problem "%preun (erase) with $what: refused (status $rc)"; show "$tmp/preun.err"; }
    fi
    rc=0
    sh "$tmp/preun.sh" 1 >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || problem "%preun (upgrade) with $what: refused"
done
verdict "removing the library is refused exactly while /etc/ld.so.preload names it"

example=packaging/examples/hakmem-service.conf
[ -r "$top/$example" ] || problem "no $example"
grep -qx 'Environment=LD_PRELOAD=libhakmem.so.0' "$top/$example" 2>/dev/null || problem "$example does not set LD_PRELOAD"
if [ "$debian" = yes ]; then
    grep -qx "$example" "$top/debian/hakmem.examples" 2>/dev/null || problem "debian/hakmem.examples does not ship it"
fi
grep -qx '%doc packaging/examples' "$spec" || problem "the spec does not ship packaging/examples"
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$tmp/unit/hk-test.service.d"
    printf '[Unit]\nDescription=test\n[Service]\nExecStart=/bin/true\n' >"$tmp/unit/hk-test.service"
    cp "$top/$example" "$tmp/unit/hk-test.service.d/hakmem.conf"
    SYSTEMD_UNIT_PATH=$tmp/unit: systemd-analyze verify "$tmp/unit/hk-test.service" >"$tmp/verify.out" 2>&1 ||
        { problem "systemd-analyze verify:"; show "$tmp/verify.out"; }
fi
verdict "the systemd drop-in example sets LD_PRELOAD and ships in both packages"

finish
