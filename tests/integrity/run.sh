#!/bin/bash
# Integrity test driver (automake TAP test): each program in this folder
# performs one attack on the heap -- a write into freed memory, an
# overflow into a free neighbour, a racing double free -- and cases.txt
# says how it must end.  The misuse driver runs them.
here=$(cd "$(dirname "$0")" && pwd)
MISUSE_BINDIR=${INTEGRITY_BINDIR:-./tests/integrity} exec bash "$here/../misuse/run.sh" "$here"
