#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The demo `make demo` runs: example functions through `sandbox run`, each in a fresh microVM
# restored from the base snapshot (made by the first run). Usage: sh demo.sh [DIR]
# DIR holds sandbox and examples/ (default: this script's directory).
dir=${1:-$(cd "$(dirname "$0")" && pwd)}
sandbox=$dir/sandbox
ex=$dir/examples

say() {
	printf '\n==> %s\n' "$*"
}

say "sandbox run $ex/hello world   (the first run makes the base snapshot: a boot, once)"
"$sandbox" run "$ex/hello" world || exit $?

say "sandbox run $ex/hello again   (restored from the cached snapshot)"
start=$(date +%s%N 2>/dev/null)
"$sandbox" run "$ex/hello" again || exit $?
end=$(date +%s%N 2>/dev/null)
case $start$end in
*N*) ;;
*) echo "(took $(((end - start) / 1000000)) ms, restore and teardown included)" ;;
esac

say "echo 'some input' | sandbox run $ex/cksum   (stdin goes to the function)"
echo 'some input' | "$sandbox" run "$ex/cksum" || exit $?

say "sandbox run $ex/exitcode 3   (its exit status is ours)"
"$sandbox" run "$ex/exitcode" 3
echo "exit status: $?"

say "sandbox run --timeout 2 $ex/burn   (a function that never ends is killed)"
"$sandbox" run --timeout 2 "$ex/burn"
echo "exit status: $? (104: timeout)"
exit 0
