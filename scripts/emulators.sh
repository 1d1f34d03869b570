#!/usr/bin/env bash
# Local AWS emulators for kinsumer's tests, on loopback only:
#   kinesalite 3.3.3 (Kinesis) and dynalite 4.0.0 (DynamoDB), pinned in .ci/emulators/package.json.
#   `start` also installs kinesis-local (kinesis-mock), which the fan-out tests start themselves.
#
#   scripts/emulators.sh start   install what is missing, start both on free 127.0.0.1 ports
#   scripts/emulators.sh env     print the exports that point the AWS SDK at them:
#                                  eval "$(scripts/emulators.sh env)"
#   scripts/emulators.sh stop    stop what `start` started (and only that)
#
# State (pids, ports, logs) lives in .ci/state/. If KINSUMER_EMULATOR_PARENT_PID is set when
# starting, the emulators exit by themselves once that process is gone (scripts/test.sh sets it
# to its own pid), so an interrupted run never leaves servers behind.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
emu_dir="$root/.ci/emulators"
state_dir="$root/.ci/state"
emulators=(kinesalite dynalite)
start_timeout_s=30

say() { printf 'emulators: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $*"
  fi
}

# apt-get install, refreshing the package lists only when the install cannot proceed without it.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "$* missing and apt-get not available; install $* yourself"
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y --no-install-recommends "$@"; then
    say "apt-get install failed; running apt-get update and trying again"
    as_root apt-get update
    as_root apt-get install -y --no-install-recommends "$@"
  fi
}

ensure_node() {
  local missing=()
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt)"
    apt_install "${missing[@]}"
  fi
}

installed_version() { # $1 = package name; prints its installed version or nothing
  local pj="$emu_dir/node_modules/$1/package.json"
  [ -f "$pj" ] && node -p "require(process.argv[1]).version" "$pj" 2>/dev/null || true
}

ensure_deps() {
  ensure_node
  local pkg want stale=()
  # kinesis-local (kinesis-mock) is not started here; the fan-out tests start it from node_modules.
  for pkg in kinesalite dynalite kinesis-local; do
    want=$(node -p "require(process.argv[1]).dependencies[process.argv[2]]" "$emu_dir/package.json" "$pkg")
    [ "$(installed_version "$pkg")" = "$want" ] || stale+=("$pkg $want")
  done
  if [ ${#stale[@]} -gt 0 ]; then
    say "installing $(IFS=,; echo "${stale[*]}") (npm ci in .ci/emulators)"
    (cd "$emu_dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
  fi
}

pid_of() { cat "$state_dir/$1.pid" 2>/dev/null || true; }
port_of() { cat "$state_dir/$1.port" 2>/dev/null || true; }

# True when the pid recorded for emulator $1 is alive and still that emulator (not a reused pid).
is_running() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "node_modules/$1/cli.js"
}

answers() { # $1 = port: any HTTP answer counts (the emulators refuse unsigned requests)
  if command -v curl >/dev/null 2>&1; then
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST "http://127.0.0.1:$1/" || true)
    [ -n "$code" ] && [ "$code" != "000" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

start_one() { # $1 = name, rest = emulator arguments
  local name=$1
  shift
  local port_file="$state_dir/$name.port" log="$state_dir/$name.log"
  rm -f "$port_file" "$state_dir/$name.pid"
  KINSUMER_EMULATOR_PORT_FILE="$port_file" \
    KINSUMER_EMULATOR_PARENT_PID="${KINSUMER_EMULATOR_PARENT_PID:-}" \
    nohup node -r "$emu_dir/loopback.js" "$emu_dir/node_modules/$name/cli.js" "$@" \
    </dev/null >"$log" 2>&1 &
  echo $! >"$state_dir/$name.pid"
}

wait_one() { # $1 = name
  local name=$1 pid port deadline=$((SECONDS + start_timeout_s))
  pid=$(pid_of "$name")
  while :; do
    kill -0 "$pid" 2>/dev/null || { cat "$state_dir/$name.log" >&2; die "$name (pid $pid) exited during start-up; its log is above"; }
    port=$(port_of "$name")
    if [ -n "$port" ] && answers "$port"; then
      say "$name answers on 127.0.0.1:$port (pid $pid)"
      return 0
    fi
    [ $SECONDS -lt $deadline ] || { cat "$state_dir/$name.log" >&2; die "$name did not answer within ${start_timeout_s}s"; }
    sleep 0.05
  done
}

stop_all() {
  local name pid
  for name in "${emulators[@]}"; do
    pid=$(pid_of "$name")
    if [ -n "$pid" ] && is_running "$name"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
      say "stopped $name (pid $pid)"
    fi
    rm -f "$state_dir/$name.pid" "$state_dir/$name.port"
  done
}

cmd_start() {
  mkdir -p "$state_dir"
  if is_running kinesalite && is_running dynalite; then
    say "already running (kinesalite on $(port_of kinesalite), dynalite on $(port_of dynalite))"
    return 0
  fi
  stop_all # a half-started or stale set
  ensure_deps
  start_one kinesalite --port 0 --createStreamMs 1 --deleteStreamMs 1 --updateStreamMs 1 --shardLimit 1000
  start_one dynalite --host 127.0.0.1 --port 0 --createTableMs 1 --deleteTableMs 1 --updateTableMs 1
  if ! (wait_one kinesalite && wait_one dynalite); then
    stop_all
    exit 1
  fi
}

cmd_env() {
  is_running kinesalite && is_running dynalite || die "not running; run: scripts/emulators.sh start"
  cat <<EOF
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$(port_of kinesalite)
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$(port_of dynalite)
export AWS_ACCESS_KEY_ID=kinsumer-test
export AWS_SECRET_ACCESS_KEY=kinsumer-test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
EOF
}

case "${1:-}" in
  start) cmd_start ;;
  stop) stop_all ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
