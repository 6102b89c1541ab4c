#!/bin/sh
# run-test.sh: automake's LOG_COMPILER for compiled tests. Integration and
# footprint tests run with libhakmem preloaded, as a user would run a
# program; unit tests link the allocator under internal names and run as
# they are.
prog=$1
shift
case "$prog" in
  */integration/* | */footprint/*)
    if [ ! -f "$HAKMEM_LIB" ]; then
      echo "Bail out! library not found: $HAKMEM_LIB"
      exit 1
    fi
    LD_PRELOAD="$HAKMEM_LIB${LD_PRELOAD:+:$LD_PRELOAD}" exec "$prog" "$@"
    ;;
  *)
    exec "$prog" "$@"
    ;;
esac
