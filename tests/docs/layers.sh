#!/bin/bash
# The layers of src/ (automake TAP test): no module calls up into a module
# that calls it, and no source file is longer than one sitting's reading.
# See tests/docs/layers.py. python3 is required: without it the test bails
# out rather than skipping.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null 2>&1 || { echo "Bail out! python3 not found"; exit 1; }
exec python3 "$here/layers.py" --self-test "$here/../../src"
