#!/usr/bin/env bash
# The whole test suite in one command: starts the local emulators (kinesalite + dynalite on
# loopback), points the AWS SDK at them, runs `cargo test --workspace --all-targets` with any extra
# arguments passed through (and, with no arguments, the doc tests), stops the emulators again
# whatever happens, and exits with cargo's status.
#
#   scripts/test.sh                                        # everything
#   scripts/test.sh split -- --nocapture                   # everything, tests named *split*
#   scripts/test.sh -p kinsumer --test emulator_smoke      # only these targets
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: error: cargo not found on PATH. Install the Rust toolchain (rustup, Rust >= 1.94.1)" \
    "and make sure ~/.cargo/bin is on PATH, then run scripts/test.sh again." >&2
  exit 1
fi

# The emulators watch this shell: if it dies, even by SIGKILL, they exit within half a second.
export KINSUMER_EMULATOR_PARENT_PID=$$

log=$(mktemp)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  scripts/emulators.sh stop || true
  rm -f "$log"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/emulators.sh start
eval "$(scripts/emulators.sh env)"
echo "test.sh: Kinesis at $AWS_ENDPOINT_URL_KINESIS, DynamoDB at $AWS_ENDPOINT_URL_DYNAMODB" >&2

# Output goes through tee (for the summary below): keep cargo's colours on a terminal.
if [ -t 1 ] && [ -z "${CARGO_TERM_COLOR:-}" ]; then export CARGO_TERM_COLOR=always; fi

# Arguments that choose packages or targets replace the default `--workspace --all-targets`
# (cargo would otherwise add them to "everything"); all other arguments are passed through.
selection=(--workspace --all-targets)
for arg in "$@"; do
  case "$arg" in
    --) break ;;
    -p* | --package | --package=* | --workspace | --all-targets | --lib | --bins | --bin | --bin=* | \
      --tests | --test | --test=* | --benches | --bench | --bench=* | --examples | --example | \
      --example=* | --doc)
      selection=()
      break
      ;;
  esac
done

status=0
cargo test "${selection[@]}" "$@" 2>&1 | tee -a "$log" || status=$?
# --all-targets leaves out doc tests: run them too when the whole suite was asked for.
if [ "$status" -eq 0 ] && [ $# -eq 0 ]; then
  cargo test --workspace --doc 2>&1 | tee -a "$log" || status=$?
fi

scripts/emulators.sh stop

# cargo prints one "test result:" line per test binary; add them up into one closing line.
awk '/^test result:/ {
       for (i = 2; i <= NF; i++) {
         if ($i ~ /^passed;?$/) passed += $(i - 1)
         if ($i ~ /^failed;?$/) failed += $(i - 1)
         if ($i ~ /^ignored;?$/) ignored += $(i - 1)
       }
     }
     END { printf "summary: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
exit "$status"
