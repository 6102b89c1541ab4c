#!/bin/bash
# The crash report of a non-canonical pointer (automake TAP test; issue
# 12, finding 8).
#
# A store by hakmem's own code through a non-canonical address (bits 63 to
# 47 not all equal, as a corrupted free-list link often is) is a general
# protection or stack-segment fault: the kernel sends SIGSEGV or SIGBUS
# with si_code SI_KERNEL and no address. The report must say so, not
# "address 0x0"; a canonical unmapped address is still named. The probe
# makes hakmem's posix_memalign() store its result at the address given.

# shellcheck source=tests/user/lib.sh
. "$(dirname "$0")/lib.sh"

case $(uname -m) in
    x86_64) ;;
    *)
        skip "a fault at a non-canonical address is reported as one" "not x86_64"
        finish
        exit
        ;;
esac

# subject ADDRESS: runs the probe; its stderr in $tmp/crash.err, the
# signal's name in $sig.
subject() {
    local rc=0
    { LD_PRELOAD=$lib "$probe" store "$1" >"$tmp/crash.out" 2>"$tmp/crash.err"; } 2>/dev/null || rc=$?
    sig=
    [ "$rc" -gt 128 ] && sig=SIG$(kill -l $((rc - 128)) 2>/dev/null)
    [ -n "$sig" ] || { problem "$1: not killed by a signal (status $rc)"; show "$tmp/crash.out" "$tmp/crash.err"; }
}

version_re=$(printf '%s' "$PACKAGE_VERSION" | sed 's/\./\\./g')
for address in 0x8000000000000000 0xdead000000000000; do
    subject "$address"
    case $sig in
        SIGSEGV | SIGBUS) ;;
        *) problem "$address: died of ${sig:-nothing}, expected SIGSEGV or SIGBUS" ;;
    esac
    grep -qE "^hakmem: $sig at a non-canonical address \\(a general protection fault: the kernel gives no address\\) in the allocator \\(hakmem $version_re, pc 0x[0-9a-f]+\\): heap metadata is probably corrupted" "$tmp/crash.err" ||
        { problem "$address: the report does not say non-canonical"; show "$tmp/crash.err"; }
    grep -q 'at address 0x0 ' "$tmp/crash.err" && problem "$address: the report says address 0x0"
done
verdict "a fault at a non-canonical address is reported as one, not as address 0x0"

subject 0x10
[ "$sig" = SIGSEGV ] || problem "0x10: died of ${sig:-nothing}, expected SIGSEGV"
grep -qE "^hakmem: SIGSEGV at address 0x10 in the allocator \\(hakmem $version_re, pc 0x[0-9a-f]+\\)" "$tmp/crash.err" ||
    { problem "0x10: the report does not name the address"; show "$tmp/crash.err"; }
verdict "a fault at a canonical unmapped address still names it"

finish
