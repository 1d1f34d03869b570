#!/usr/bin/env bash
# The whole test suite in one command: starts the local emulators (kinesalite + dynalite on
# loopback), points the AWS SDK at them, runs `cargo test --workspace --all-targets` with any extra
# arguments passed through, and stops the emulators again whatever happens.
#
#   scripts/test.sh                      # everything
#   scripts/test.sh -p kinsumer --test emulator_smoke -- --nocapture
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

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  scripts/emulators.sh stop || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/emulators.sh start
eval "$(scripts/emulators.sh env)"
echo "test.sh: Kinesis at $AWS_ENDPOINT_URL_KINESIS, DynamoDB at $AWS_ENDPOINT_URL_DYNAMODB" >&2

cargo test --workspace --all-targets "$@"
