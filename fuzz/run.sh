#!/usr/bin/env bash
# Coverage-guided fuzzing of switchyard's input parsers (cargo-fuzz, libFuzzer).
#
#   fuzz/run.sh [SECONDS] [TARGET...]    default: 60 s for each target, every target
#
# Targets run one after another, never in parallel. Each starts from its committed seed
# corpus in fuzz/corpus/<target>/ (read only) and writes what it finds to
# fuzz/corpus-work/<target>/ (ignored by git); a crash is saved under
# fuzz/artifacts/<target>/ with the command that reproduces it. Not part of .ci/run.
#
# Built with optimizations, debug assertions and overflow checks (-O -a), and without a
# sanitizer: the fuzzed code is safe Rust, where AddressSanitizer finds nothing the
# panics do not, and it made the slowest target (codeowners) 1.5 to 3 times slower in
# trials. Without a sanitizer every rustc flag cargo-fuzz passes is stable, so the
# stable toolchain does. FUZZ_SANITIZER=address brings ASan back; that needs
# -Zsanitizer, which stable rustc accepts with RUSTC_BOOTSTRAP=1 (it ships the runtime).
#
# The three inputs that crashed the first runs are kept in the seed corpora as
# regress-* files; each fix also has a unit test beside the code.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-60}
shift || true
sanitizer=${FUZZ_SANITIZER:-none}
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
fi
flags=(-O -a --sanitizer "$sanitizer")

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build "${flags[@]}"

status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus-work/$target" "artifacts/$target"
    echo "== $target: ${seconds}s"
    # -timeout: an input slower than 10 s is a hang worth a report.
    # -print_final_stats=1: the run's exec count, exec/s and coverage at the end.
    if ! cargo fuzz run "${flags[@]}" "$target" "corpus-work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1; then
        echo "== $target: crashed; see fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
