#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each and prints executions and coverage per target.
#
#   fuzz/run.sh SECONDS [TARGET...]     (default: every target, one after another)
#   FUZZ_JOBS=2 fuzz/run.sh 600         (two targets at a time)
#
# Needs cargo-fuzz. Uses the nightly toolchain when one is installed; otherwise the stable
# one with RUSTC_BOOTSTRAP=1 (for -Zsanitizer). FUZZ_TOOLCHAIN=+name picks another. Inputs found are kept in fuzz/corpus/<target>/ (not committed); the
# committed seeds in fuzz/seeds/<target>/ are read too. A crash, timeout or leak stops the
# target, leaves its input in fuzz/artifacts/<target>/, and makes this script fail.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    toolchain=$FUZZ_TOOLCHAIN
elif rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=+nightly
else
    toolchain=+stable
    export RUSTC_BOOTSTRAP=1
fi
jobs=${FUZZ_JOBS:-1}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo $toolchain fuzz list)
fi

cargo $toolchain fuzz build -O >/dev/null
logs=fuzz/target/logs
mkdir -p "$logs"

run_one() {
    local t=$1
    mkdir -p "fuzz/corpus/$t"
    cargo $toolchain fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 >"$logs/$t.log" 2>&1
}

failed() {
    echo "FAILED: $1 (log: $logs/$1.log; input: fuzz/artifacts/$1/)"
    grep -v '^#' "$logs/$1.log" | tail -40
    status=1
}

status=0
pids=()
names=()
for t in "${targets[@]}"; do
    run_one "$t" &
    pids+=($!)
    names+=("$t")
    if [ ${#pids[@]} -ge "$jobs" ]; then
        wait "${pids[0]}" || failed "${names[0]}"
        pids=("${pids[@]:1}")
        names=("${names[@]:1}")
    fi
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed "${names[$i]}"
done

printf '%-18s %12s %10s %8s %8s %8s\n' target executions exec/s cov ft corpus
for t in "${targets[@]}"; do
    log="$logs/$t.log"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
    printf '%-18s %12s %10s %8s %8s %8s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
done
exit $status
