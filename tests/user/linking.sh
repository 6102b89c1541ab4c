#!/bin/bash
# Linking with hakmem (automake TAP test; issue 12, findings 9 and 10).
#
#  - A C++ program that only uses new and delete, linked with the flags of
#    `pkg-config --libs hakmem` and -Wl,--as-needed (Debian's and Ubuntu's
#    toolchains link that way), keeps libhakmem.so.0 in its NEEDED entries
#    and runs on hakmem: it never names a malloc symbol itself, so
#    --as-needed would drop a plain -lhakmem.
#  - dlopen() of the library, a thread that allocates with it, dlclose(),
#    then the thread exits: the thread-exit destructor must still be there
#    (the library is linked with -z nodelete).

# shellcheck source=tests/user/lib.sh
. "$(dirname "$0")/lib.sh"

[ -n "${HAKMEM_BUILDDIR:-}" ] || bail "HAKMEM_BUILDDIR is not set (run through make check)"
pc=$HAKMEM_BUILDDIR/hakmem.pc
[ -f "$pc" ] || bail "$pc not built"
libdir=$(dirname "$lib")

# --- pkg-config and C++ -------------------------------------------------------
pkgconfig=$(command -v pkg-config || command -v pkgconf || true)
if [ -z "$pkgconfig" ]; then
    skip "a new/delete-only C++ program linked through pkg-config runs on hakmem" "pkg-config not installed"
elif ! command -v g++ >/dev/null 2>&1; then
    skip "a new/delete-only C++ program linked through pkg-config runs on hakmem" "g++ not installed"
else
    cat >"$tmp/newdelete.cc" <<'CXX'
// Only new and delete: no malloc symbol of its own. Prints whether the
// library is mapped, read with iostreams (which allocate through new).
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

int main() {
  std::map<int, std::unique_ptr<std::vector<std::string>>> m;
  for (int i = 0; i < 20000; i++)
    m[i % 1000].reset(new std::vector<std::string>(i % 7, std::string(40, 'x')));
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool mapped = false;
  while (std::getline(maps, line))
    if (line.find("/libhakmem.so.0") != std::string::npos)
      mapped = true;
  std::cout << (mapped ? "hakmem mapped" : "hakmem not mapped") << std::endl;
  return mapped ? 0 : 3;
}
CXX
    # The build tree's hakmem.pc, pointed at the build tree's library.
    flags=$(PKG_CONFIG_PATH=$HAKMEM_BUILDDIR "$pkgconfig" --define-variable=libdir="$libdir" --libs hakmem 2>"$tmp/pc.err") ||
        { problem "pkg-config --libs hakmem failed"; show "$tmp/pc.err"; }
    echo "# pkg-config --libs hakmem: $flags"
    case " $flags " in
        *" -Wl,--push-state,--no-as-needed "*"-lhakmem"*" -Wl,--pop-state "*) ;;
        *) problem "the flags do not keep the library against --as-needed: $flags" ;;
    esac
    # shellcheck disable=SC2086 # pkg-config prints several words
    if ! g++ -o "$tmp/newdelete" -Wl,--as-needed "$tmp/newdelete.cc" $flags >"$tmp/cc.err" 2>&1; then
        problem "g++ failed"
        show "$tmp/cc.err"
    else
        if command -v readelf >/dev/null 2>&1; then
            readelf -d "$tmp/newdelete" | grep -q 'NEEDED.*\[libhakmem\.so\.0\]' ||
                problem "libhakmem.so.0 is not NEEDED: $(readelf -d "$tmp/newdelete" | grep NEEDED | tr -s ' ' | tr '\n' ';')"
        fi
        rc=0
        LD_LIBRARY_PATH=$libdir "$tmp/newdelete" >"$tmp/nd.out" 2>"$tmp/nd.err" || rc=$?
        [ "$rc" -eq 0 ] || { problem "the program says: $(cat "$tmp/nd.out") (status $rc)"; show "$tmp/nd.err"; }
    fi
    verdict "a new/delete-only C++ program linked through pkg-config (with --as-needed) runs on hakmem"
fi

# --- dlopen, dlclose, thread exit ---------------------------------------------------
rc=0
{ "$probe" dlopen "$lib" >"$tmp/dl.out" 2>"$tmp/dl.err"; } 2>/dev/null || rc=$?
if [ "$rc" -ne 0 ] || ! grep -qx survived "$tmp/dl.out"; then
    if [ "$rc" -gt 128 ]; then
        problem "killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
    else
        problem "exit status $rc"
    fi
    show "$tmp/dl.out" "$tmp/dl.err"
fi
if command -v readelf >/dev/null 2>&1; then
    readelf -d "$lib" | grep -q 'FLAGS_1.*NODELETE' || problem "the library has no NODELETE flag"
fi
verdict "dlopen, allocate in a thread, dlclose, then the thread exits: no crash"

finish
