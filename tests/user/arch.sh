#!/bin/bash
# hakmem-run and the architecture of the program (automake TAP test; issue
# 15, item 4).
#
# Built for a distribution's library directory, the wrapper preloads the
# library by its SONAME, libhakmem.so.0, so that the loader takes the
# library of each program's architecture and one wrapper serves them all
# (Debian's hakmem package is Architecture: all). The loader skips a
# library of the wrong ELF class or machine with one "cannot be preloaded
# ... ignored" line and runs the program without hakmem; the wrapper reads
# the ELF header of the program (of its interpreter, for a #! script, and
# of the command of #!/usr/bin/env) and of the libraries installed, and
# refuses with a clear message and status 125 instead. Checked with
# programs whose ELF headers are made here (32-bit x86, arm64, big-endian
# s390x), with a real 32-bit x86 program where binutils can assemble one,
# in both forms of the wrapper: by SONAME (a copy of the built wrapper with
# the default a distribution build gives it) and by path
# (HAKMEM_RUN_LIBRARY). And --version asks the library for its version: a
# stand-in library that answers 9.8.7 must be reported as 9.8.7.

# shellcheck source=tests/user/lib.sh
. "$(dirname "$0")/lib.sh"

[ -n "${PRINT_ENV:-}" ] && [ -x "$PRINT_ENV" ] || bail "PRINT_ENV is not set or not built (run through make check)"
penv=$PRINT_ENV
libdir=$(dirname "$lib")

# The wrapper as a distribution build makes it: libdir /usr/lib/<triplet>
# or /usr/lib64 gives the SONAME as the default library (Makefile.am).
soname_run=$tmp/hakmem-run-soname
sed "s|^hkr_default_library=.*|hkr_default_library='libhakmem.so.0'|" "$run" >"$soname_run"
chmod +x "$soname_run"
grep -qx "hkr_default_library='libhakmem.so.0'" "$soname_run" || bail "cannot make the SONAME form of $run"

# wrap NAME WRAPPER ARG...: output in $tmp/NAME.out and .err, status in $rc.
wrap() {
    local name=$1
    shift
    rc=0
    { "$@" </dev/null >"$tmp/$name.out" 2>"$tmp/$name.err"; } 2>/dev/null || rc=$?
}

# A system-wide libhakmem.so.0 (hakmem installed on this machine) changes
# what "not installed" means; those checks are skipped then.
system_lib=
for f in /lib/*-linux-*/libhakmem.so.0 /usr/lib/*-linux-*/libhakmem.so.0 /lib64/libhakmem.so.0 \
    /usr/lib64/libhakmem.so.0 /lib/libhakmem.so.0 /usr/lib/libhakmem.so.0; do
    [ -f "$f" ] && system_lib=$f
done
# The cache is read whole, not piped into grep -q: with pipefail, ldconfig
# dying of SIGPIPE after grep's first match would read as "not found".
if [ -z "$system_lib" ] && [ -x /sbin/ldconfig ]; then
    system_lib=$(/sbin/ldconfig -p 2>/dev/null | sed -n 's|.*libhakmem\.so\.0 .* => ||p')
    system_lib=${system_lib%%$'\n'*}
fi

# --- by SONAME -------------------------------------------------------------------
unset HAKMEM_RUN_LIBRARY
wrap soname env LD_LIBRARY_PATH="$libdir" "$soname_run" "$penv" 3
[ "$rc" -eq 3 ] || { problem "status $rc, expected the program's 3"; show "$tmp/soname.err"; }
grep -qx 'LD_PRELOAD=libhakmem.so.0' "$tmp/soname.out" || problem "LD_PRELOAD is not the SONAME: $(grep '^LD_PRELOAD' "$tmp/soname.out")"
grep -qx "hakmem=loaded $PACKAGE_VERSION" "$tmp/soname.out" || problem "hakmem is not loaded: $(grep '^hakmem=' "$tmp/soname.out")"
[ ! -s "$tmp/soname.err" ] || { problem "a message for a fitting program"; show "$tmp/soname.err"; }
printf '#!/bin/sh\nexec "$@"\n' >"$tmp/script"
chmod +x "$tmp/script"
wrap soname-script env LD_LIBRARY_PATH="$libdir" "$soname_run" "$tmp/script" "$penv" 4
[ "$rc" -eq 4 ] || { problem "a #!/bin/sh script: status $rc, expected 4"; show "$tmp/soname-script.err"; }
grep -qx "hakmem=loaded $PACKAGE_VERSION" "$tmp/soname-script.out" || problem "a #!/bin/sh script: hakmem is not loaded"
verdict "by SONAME: LD_PRELOAD=libhakmem.so.0, the loader finds the library, the program runs on hakmem"

if [ -n "$system_lib" ]; then
    skip "by SONAME, no library installed: status 125 and a message" "hakmem is installed on this machine ($system_lib)"
else
    wrap nolib env -u LD_LIBRARY_PATH "$soname_run" "$penv"
    [ "$rc" -eq 125 ] || problem "status $rc, expected 125"
    grep -qx 'hakmem-run: hakmem library not found: no libhakmem.so.0 where the loader looks (install libhakmem0, or set HAKMEM_RUN_LIBRARY to its path)' "$tmp/nolib.err" ||
        { problem "no clear message"; show "$tmp/nolib.err"; }
    [ ! -s "$tmp/nolib.out" ] || problem "the program ran"
    verdict "by SONAME, no library installed: status 125 and a message"
fi

# --- programs of other architectures -----------------------------------------------
# elf_header FILE CLASS DATA MACHINE: an ELF header of a dynamically linked
# program (ET_DYN, one PT_INTERP program header), as the kernel would take
# it, for CLASS (1 32-bit, 2 64-bit), DATA (1 little-, 2 big-endian) and
# MACHINE (e_machine).
elf_header() {
    python3 - "$@" <<'PY'
import struct, sys
path, cls, data, machine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
e = "<" if data == 1 else ">"
ident = b"\x7fELF" + bytes([cls, data, 1, 0]) + bytes(8)
if cls == 2:
    ehsize, phentsize = 64, 56
    hdr = ident + struct.pack(e + "HHIQQQIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize, 1, 0, 0, 0)
    ph = struct.pack(e + "IIQQQQQQ", 3, 4, 0, 0, 0, 0, 0, 1)
else:
    ehsize, phentsize = 52, 32
    hdr = ident + struct.pack(e + "HHIIIIIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize, 1, 0, 0, 0)
    ph = struct.pack(e + "IIIIIIII", 3, 0, 0, 0, 0, 0, 4, 1)
with open(path, "wb") as f:
    f.write(hdr + ph + bytes(64))
PY
    chmod +x "$1"
}

command -v python3 >/dev/null 2>&1 || bail "python3 not found (it writes the ELF headers)"
mkdir -p "$tmp/bin"
elf_header "$tmp/bin/i386-prog" 1 1 3
elf_header "$tmp/bin/arm64-prog" 2 1 183
elf_header "$tmp/bin/s390x-prog" 2 2 22
printf '#!%s -x\necho never\n' "$tmp/bin/i386-prog" >"$tmp/bin/i386-script"
printf '#!/usr/bin/env -S s390x-prog -u\necho never\n' >"$tmp/bin/env-script"
printf '#!%s\necho never\n' "$tmp/bin/i386-script" >"$tmp/bin/nested-script"
chmod +x "$tmp/bin/i386-script" "$tmp/bin/env-script" "$tmp/bin/nested-script"

# case PROGRAM|WHAT THE MESSAGE CALLS IT|ARCHITECTURE|ADVICE
cases=(
    "i386-prog|$tmp/bin/i386-prog|32-bit x86 (i386)|hakmem is built for 64-bit programs only"
    "arm64-prog|$tmp/bin/arm64-prog|64-bit ARM (arm64)|install the library of that architecture (Debian: libhakmem0:arm64)"
    "s390x-prog|$tmp/bin/s390x-prog|64-bit IBM Z (s390x)|install the library of that architecture (Debian: libhakmem0:s390x)"
    "i386-script|$tmp/bin/i386-prog (the interpreter of $tmp/bin/i386-script)|32-bit x86 (i386)|hakmem is built for 64-bit programs only"
    "env-script|$tmp/bin/s390x-prog (the interpreter of $tmp/bin/env-script)|64-bit IBM Z (s390x)|install the library of that architecture (Debian: libhakmem0:s390x)"
    "nested-script|$tmp/bin/i386-prog (the interpreter of $tmp/bin/nested-script)|32-bit x86 (i386)|hakmem is built for 64-bit programs only"
)
for c in "${cases[@]}"; do
    IFS='|' read -r prog what arch advice <<<"$c"
    wrap foreign env PATH="$tmp/bin:$PATH" LD_LIBRARY_PATH="$libdir" "$soname_run" "$tmp/bin/$prog"
    [ "$rc" -eq 125 ] || problem "$prog: status $rc, expected 125"
    want="hakmem-run: $what is a $arch program, and no libhakmem.so.0 for it is installed (installed: "
    if [ "$(grep -c '' "$tmp/foreign.err")" -ne 1 ] || ! grep -qF "$want" "$tmp/foreign.err" ||
        ! grep -qF "$libdir): the loader would run it without hakmem; $advice" "$tmp/foreign.err"; then
        problem "$prog: not the one line expected, '$want... in $libdir): the loader would run it without hakmem; $advice'"
        show "$tmp/foreign.err"
    fi
    [ ! -s "$tmp/foreign.out" ] || problem "$prog: something ran"

    wrap foreign-path env PATH="$tmp/bin:$PATH" HAKMEM_RUN_LIBRARY="$lib" "$run" "$tmp/bin/$prog"
    [ "$rc" -eq 125 ] || problem "$prog, HAKMEM_RUN_LIBRARY: status $rc, expected 125"
    grep -qxF "hakmem-run: $what is a $arch program, and the hakmem library $lib is not (it is 64-bit x86 (amd64)): the loader would run the program without it" "$tmp/foreign-path.err" ||
        [ "$(uname -m)" != x86_64 ] || { problem "$prog, HAKMEM_RUN_LIBRARY: no clear message"; show "$tmp/foreign-path.err"; }
    grep -q "^hakmem-run: $what is a $arch program, and the hakmem library $lib is not (it is " "$tmp/foreign-path.err" ||
        { problem "$prog, HAKMEM_RUN_LIBRARY: no clear message"; show "$tmp/foreign-path.err"; }
done
verdict "a program of another architecture (32-bit x86, arm64, s390x; direct, #!, #!/usr/bin/env, nested): status 125, one line naming it"

# A real 32-bit x86 program: on x86-64, binutils assembles and links one
# (it exits with status 7) without a 32-bit C library.
if [ "$(uname -m)" != x86_64 ] || ! command -v as >/dev/null 2>&1 || ! command -v ld >/dev/null 2>&1; then
    skip "a real 32-bit x86 program: status 125 and a message, not ld.so's 'wrong ELF class ... ignored'" "not x86-64, or no binutils"
else
    printf '.globl _start\n_start:\n\tmovl $1, %%eax\n\tmovl $7, %%ebx\n\tint $0x80\n' >"$tmp/p32.s"
    if ! as --32 -o "$tmp/p32.o" "$tmp/p32.s" 2>"$tmp/p32.err" ||
        ! ld -m elf_i386 -pie -dynamic-linker /lib/ld-linux.so.2 -o "$tmp/p32" "$tmp/p32.o" 2>>"$tmp/p32.err"; then
        problem "cannot build the 32-bit program"
        show "$tmp/p32.err"
    else
        if [ -x /lib/ld-linux.so.2 ]; then
            # What the loader does on its own: ignores the library, runs the program.
            rc=0
            LD_PRELOAD=$lib "$tmp/p32" 2>"$tmp/p32-plain.err" || rc=$?
            [ "$rc" -eq 7 ] || problem "the 32-bit program run plainly: status $rc, expected 7"
            grep -q 'wrong ELF class' "$tmp/p32-plain.err" || { problem "ld.so did not say 'wrong ELF class'"; show "$tmp/p32-plain.err"; }
            echo "# ld.so alone: $(head -n 1 "$tmp/p32-plain.err")"
        fi
        wrap p32 env LD_LIBRARY_PATH="$libdir" "$soname_run" "$tmp/p32"
        [ "$rc" -eq 125 ] || problem "by SONAME: status $rc, expected 125"
        grep -qxF "hakmem-run: $tmp/p32 is a 32-bit x86 (i386) program, and no libhakmem.so.0 for it is installed (installed: 64-bit x86 (amd64) in $libdir): the loader would run it without hakmem; hakmem is built for 64-bit programs only" "$tmp/p32.err" ||
            { problem "by SONAME: not the message expected"; show "$tmp/p32.err"; }
        wrap p32-path env HAKMEM_RUN_LIBRARY="$lib" "$run" "$tmp/p32"
        [ "$rc" -eq 125 ] || problem "by path: status $rc, expected 125"
        grep -q "^hakmem-run: $tmp/p32 is a 32-bit x86 (i386) program, and the hakmem library $lib is not" "$tmp/p32-path.err" ||
            { problem "by path: not the message expected"; show "$tmp/p32-path.err"; }
        grep -q 'wrong ELF class' "$tmp/p32.err" "$tmp/p32-path.err" && problem "ld.so's message instead of the wrapper's"
    fi
    verdict "a real 32-bit x86 program: status 125 and a message, not ld.so's 'wrong ELF class ... ignored'"
fi

printf 'not ELF\n' >"$tmp/not-elf.so"
wrap notelf env HAKMEM_RUN_LIBRARY="$tmp/not-elf.so" "$run" "$penv"
[ "$rc" -eq 125 ] || problem "status $rc, expected 125"
grep -qx "hakmem-run: the hakmem library $tmp/not-elf.so is not an ELF shared library" "$tmp/notelf.err" || { problem "no clear message"; show "$tmp/notelf.err"; }
verdict "HAKMEM_RUN_LIBRARY naming a file that is not ELF: status 125"

# --- --version asks the library ------------------------------------------------------
wrap ver env LD_LIBRARY_PATH="$libdir" "$soname_run" --version
[ "$rc" -eq 0 ] || problem "status $rc"
real=$(cd "$libdir" && readlink -f libhakmem.so.0)
grep -qxF "library: libhakmem.so.0 ($real): hakmem $PACKAGE_VERSION" "$tmp/ver.out" ||
    { problem "by SONAME: expected 'library: libhakmem.so.0 ($real): hakmem $PACKAGE_VERSION'"; show "$tmp/ver.out" "$tmp/ver.err"; }
wrap ver-path env HAKMEM_RUN_LIBRARY="$lib" "$run" --version
grep -qxF "library: $lib ($real): hakmem $PACKAGE_VERSION" "$tmp/ver-path.out" ||
    { problem "by path: expected 'library: $lib ($real): hakmem $PACKAGE_VERSION'"; show "$tmp/ver-path.out" "$tmp/ver-path.err"; }
# Knobs of the caller's do not get in the way (a statistics file stays empty).
wrap ver-knobs env HAKMEM_RUN_LIBRARY="$lib" HAKMEM_STATS=1 HAKMEM_STATS_FILE="$tmp/ver-stats" "$run" --version
grep -qxF "library: $lib ($real): hakmem $PACKAGE_VERSION" "$tmp/ver-knobs.out" || problem "with HAKMEM_STATS=1 set: $(grep '^library' "$tmp/ver-knobs.out")"
[ ! -s "$tmp/ver-stats" ] || problem "--version wrote a statistics report into the caller's HAKMEM_STATS_FILE"
if [ -z "$system_lib" ]; then
    wrap ver-none env -u LD_LIBRARY_PATH "$soname_run" --version
    grep -qx 'library: libhakmem.so.0: not found' "$tmp/ver-none.out" || { problem "nothing installed: $(cat "$tmp/ver-none.out")"; }
fi
verdict "--version names the file the loader takes and the version the library reports"

# A stand-in libhakmem.so.0 that answers 9.8.7 the way hakmem does: the
# version printed must be its, not the wrapper's own.
cc=$(command -v cc || command -v gcc || true)
if [ -z "$cc" ]; then
    skip "--version reports the version of the library, not of the wrapper" "no C compiler"
else
    mkdir -p "$tmp/fake"
    cat >"$tmp/fake/fake.c" <<'C'
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
__attribute__((constructor)) static void say(void) {
  const char *v = getenv("HAKMEM_VERBOSE");
  static const char line[] = "hakmem 9.8.7: VERBOSE=1\n";
  if (v != NULL && strcmp(v, "1") == 0 && write(2, line, sizeof line - 1) < 0)
    abort();
}
C
    if "$cc" -shared -fPIC -o "$tmp/fake/libhakmem.so.0" -Wl,-soname,libhakmem.so.0 "$tmp/fake/fake.c" 2>"$tmp/fake.err"; then
        wrap fake env LD_LIBRARY_PATH="$tmp/fake" "$soname_run" --version
        grep -qxF "library: libhakmem.so.0 ($tmp/fake/libhakmem.so.0): hakmem 9.8.7" "$tmp/fake.out" ||
            { problem "the stand-in's version is not reported"; show "$tmp/fake.out" "$tmp/fake.err"; }
        grep -qxF "hakmem-run (hakmem) $PACKAGE_VERSION" "$tmp/fake.out" || problem "the wrapper's own version line is gone"
    else
        problem "cannot build the stand-in library"
        show "$tmp/fake.err"
    fi
    verdict "--version reports the version of the library, not of the wrapper"
fi

finish
