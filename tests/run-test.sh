#!/bin/sh
# run-test.sh: automake's LOG_COMPILER for compiled tests. Integration and
# footprint tests run with libhakmem preloaded, as a user would run a
# program; unit tests link the allocator under internal names and run as
# they are.
#
# HK_TEST_EXEC, when set, is the command that runs a program built for
# another architecture (.ci/cross sets it to qemu-user, e.g.
# "qemu-aarch64-static"). qemu-user's static binaries ignore LD_PRELOAD
# themselves and hand it to the program they run.
prog=$1
shift
case "$prog" in
  */integration/* | */footprint/*)
    if [ ! -f "$HAKMEM_LIB" ]; then
      echo "Bail out! library not found: $HAKMEM_LIB"
      exit 1
    fi
    # shellcheck disable=SC2086 # HK_TEST_EXEC is a command and its options
    LD_PRELOAD="$HAKMEM_LIB${LD_PRELOAD:+:$LD_PRELOAD}" exec ${HK_TEST_EXEC:-} "$prog" "$@"
    ;;
  *)
    # shellcheck disable=SC2086
    exec ${HK_TEST_EXEC:-} "$prog" "$@"
    ;;
esac
