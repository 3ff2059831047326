#!/usr/bin/env bash
# A Ray cluster of one head and N worker nodes on THIS machine (each node is its own raylet with its own
# resources), for trying infoflow-ray's distributed path without a cloud. Token authentication stays on.
#
#   eval "$(cluster/local_multinode.sh start --workers 2)"   # exports RAY_ADDRESS, RAY_API_SERVER_ADDRESS, token
#   ray job submit --working-dir . -- python jobs/full_grid.py --preset tiny
#   cluster/local_multinode.sh status
#   cluster/local_multinode.sh stop
#
# Commands
#   start    start the head and the workers; print `export ...` lines on stdout (also written to
#            STATE_DIR/env.sh) and a summary on stderr
#   stop     end exactly the processes `start` started (found by their session id and Ray temp dir, signalled
#            by pid, raylets first and the GCS last). Never `ray stop`, which ends every Ray process of the user.
#   status   `ray status` of the cluster
#   env      print the `export ...` lines again
#
# Options
#   --state-dir DIR            where the cluster's state lives (default: $INFOFLOW_LOCAL_CLUSTER_DIR, else
#                              /tmp/infoflow-local-cluster-$UID)
#   --workers N                worker nodes (default 2)
#   --head-cpus N              CPUs the head offers to tasks (default 1)
#   --worker-cpus N            CPUs per worker (default 1)
#   --worker-gpus N            GPUs each worker declares (default 0). Declared, not detected: tasks asking for
#                              GPUs get scheduled on a CPU-only machine, which tests resource-driven placement.
#   --worker-resources JSON    custom resources per worker, e.g. '{"infoflow_test": 1}'
#   --object-store-bytes N     object store per node (default 100000000; Ray's minimum is about 75 MB)
#   --port N                   GCS port (default: a free port)
#   --dashboard-port N         dashboard / Jobs API port (default: a free port)
#   --wait-seconds N           how long start waits for every node to join (default 120)
#   --grace-seconds N          how long stop waits after SIGTERM before SIGKILL, per process group (default 10)
#
# Authentication: each cluster gets a fresh random token in STATE_DIR/auth_token (mode 600); all its nodes run
# with RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH pointing there, and the printed exports do the same for
# clients (ray job submit, ray status, ray.init). ~/.ray is not touched. The dashboard / Jobs API listens on
# 127.0.0.1 only; the GCS and the raylets listen on this machine's address (Ray does not bind them to loopback)
# and serve only clients that present the token.
set -euo pipefail

die() { echo "local_multinode: $*" >&2; exit 1; }
say() { echo "$*" >&2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

state_dir=${INFOFLOW_LOCAL_CLUSTER_DIR:-/tmp/infoflow-local-cluster-$(id -u)}
workers=2 head_cpus=1 worker_cpus=1 worker_gpus=0 worker_resources=""
object_store_bytes=100000000 gcs_port="" dashboard_port="" wait_seconds=120 grace_seconds=10

command=${1:-}
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
  [ "$1" = -h ] || [ "$1" = --help ] && { usage; exit 0; }
  [ $# -ge 2 ] || die "option $1 needs a value"
  case "$1" in
    --state-dir) state_dir=$2 ;;
    --workers) workers=$2 ;;
    --head-cpus) head_cpus=$2 ;;
    --worker-cpus) worker_cpus=$2 ;;
    --worker-gpus) worker_gpus=$2 ;;
    --worker-resources) worker_resources=$2 ;;
    --object-store-bytes) object_store_bytes=$2 ;;
    --port) gcs_port=$2 ;;
    --dashboard-port) dashboard_port=$2 ;;
    --wait-seconds) wait_seconds=$2 ;;
    --grace-seconds) grace_seconds=$2 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift 2
done
state_file=$state_dir/cluster.env     # written by start, read by stop/status/env

# The Python that the `ray` CLI runs on (it has ray installed), for picking ports and waiting for nodes.
ray_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  local interpreter
  interpreter=$(sed -n '1s/^#! *//p' "$(command -v ray)")
  if [ -n "$interpreter" ] && $interpreter -c 'import ray' 2>/dev/null; then echo "$interpreter"; else echo python3; fi
}

free_port() {
  $py -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Pids of the processes this cluster consists of: those in the sessions `start` created (Linux), plus those whose
# command line names the cluster's Ray temp dir and all their descendants (covers systems without session ids).
cluster_pids() {
  [ -n "${RAY_TMP:-}" ] || die "no Ray temp dir recorded; refusing to guess which processes are ours"
  {
    if [ -n "${SESSION_IDS:-}" ]; then
      ps -A -o pid=,sid= | SIDS=" $SESSION_IDS " awk 'index(ENVIRON["SIDS"], " " $2 " ") { print $1 }'
    fi
    ps -A -o pid=,ppid=,args= | ROOT="$RAY_TMP/" awk '
      { parent[$1] = $2; if (index($0, ENVIRON["ROOT"])) ours[$1] = 1 }
      END {
        do {
          grew = 0
          for (p in parent) if (!(p in ours) && (parent[p] in ours)) { ours[p] = 1; grew = 1 }
        } while (grew)
        for (p in ours) print p
      }'
  } | sort -un | grep -vx "$$" || true
}

alive() {  # a zombie is as good as gone
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  case "$stat" in Z*) return 1 ;; *) return 0 ;; esac
}

wait_gone() {  # SECONDS PID...: true once all are gone, false on timeout
  local deadline=$((SECONDS + $1)) pid any
  shift
  while :; do
    any=0
    for pid in "$@"; do alive "$pid" && any=1 && break; done
    [ $any = 0 ] && return 0
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

terminate() {  # PID...: SIGTERM, then SIGKILL whatever is left after the grace period
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  wait_gone "$grace_seconds" "$@" && return 0
  kill -KILL "$@" 2>/dev/null || true
  wait_gone 5 "$@" || true
}

write_exports() {
  {
    echo "# infoflow-ray local multi-node Ray cluster (state: $state_dir). Source me to talk to it."
    printf 'export RAY_ADDRESS=%q\n' "$GCS_ADDRESS"
    printf 'export RAY_API_SERVER_ADDRESS=%q\n' "$DASHBOARD_URL"
    echo 'export RAY_AUTH_MODE=token'
    printf 'export RAY_AUTH_TOKEN_PATH=%q\n' "$TOKEN_PATH"
    echo 'unset RAY_AUTH_TOKEN'
    printf 'export INFOFLOW_LOCAL_CLUSTER_DIR=%q\n' "$state_dir"
  } >"$state_dir/env.sh"
}

start_node() {  # NAME ARGS...: one `ray start`, in a session of its own so that stop can find all its processes
  local name=$1 log=$state_dir/logs/$1.log launcher=() sid
  shift
  command -v setsid >/dev/null && launcher=(setsid -w)
  if ! ${launcher[@]+"${launcher[@]}"} ray start --node-name="$name" \
      --temp-dir="$RAY_TMP/$name" --object-store-memory="$object_store_bytes" --dashboard-agent-listen-port=0 \
      --min-worker-port=0 --max-worker-port=0 --disable-usage-stats "$@" </dev/null >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "ray start failed for $name (full log: $log)"
  fi
  if [ ${#launcher[@]} -gt 0 ]; then  # record the new session, never our own (that would be the caller's shell)
    sid=$(ps -A -o sid=,args= | ROOT="$RAY_TMP/$name/" awk 'index($0, ENVIRON["ROOT"]) { print $1; exit }')
    if [ -n "$sid" ] && [ "$sid" != "$(ps -o sid= -p $$ | tr -d ' ')" ]; then
      SESSION_IDS="$SESSION_IDS $sid"
    fi
  fi
  save_state
}

save_state() {
  {
    printf 'RAY_TMP=%q\n' "$RAY_TMP"
    printf 'SESSION_IDS=%q\n' "${SESSION_IDS:-}"
    printf 'GCS_ADDRESS=%q\n' "$GCS_ADDRESS"
    printf 'DASHBOARD_URL=%q\n' "$DASHBOARD_URL"
    printf 'TOKEN_PATH=%q\n' "$TOKEN_PATH"
  } >"$state_file"
}

cmd_start() {
  command -v ray >/dev/null || die "the ray CLI is not on PATH (pip install 'ray[default]')"
  [ -e "$state_file" ] && die "$state_dir already holds a cluster; stop it first: $0 stop --state-dir $state_dir"
  mkdir -p "$state_dir/logs"
  state_dir=$(cd "$state_dir" && pwd)
  state_file=$state_dir/cluster.env
  py=$(ray_python)
  gcs_port=${gcs_port:-$(free_port)}
  dashboard_port=${dashboard_port:-$(free_port)}
  local client_port
  client_port=$(free_port)

  # Ray's unix socket paths must stay under ~107 bytes, so its temp dir is short and separate from the state dir.
  RAY_TMP=$(mktemp -d /tmp/ifr.XXXXXX)
  GCS_ADDRESS=127.0.0.1:$gcs_port
  DASHBOARD_URL=http://127.0.0.1:$dashboard_port
  TOKEN_PATH=$state_dir/auth_token
  SESSION_IDS=""
  (umask 077 && $py -c 'import secrets; print(secrets.token_hex(32), end="")' >"$TOKEN_PATH")
  save_state
  # Whatever fails from here on, stop what was started (the logs stay for a look).
  trap 'status=$?; [ $status -eq 0 ] || { say "start failed; stopping what was started"; keep_logs=1 cmd_stop; }' EXIT

  export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$TOKEN_PATH RAY_USAGE_STATS_ENABLED=0
  unset RAY_AUTH_TOKEN RAY_ADDRESS RAY_API_SERVER_ADDRESS

  start_node head --head --port="$gcs_port" --dashboard-host=127.0.0.1 --dashboard-port="$dashboard_port" \
    --ray-client-server-port="$client_port" --num-cpus="$head_cpus" --num-gpus=0
  local i extra=()
  [ -n "$worker_resources" ] && extra=(--resources="$worker_resources")
  for ((i = 1; i <= workers; i++)); do
    start_node "worker-$i" --address="$GCS_ADDRESS" --num-cpus="$worker_cpus" --num-gpus="$worker_gpus" \
      ${extra[@]+"${extra[@]}"}
  done

  # Wait until every node has registered, and record the node ids.
  local wait_log=$state_dir/logs/wait.log
  if ! $py - "$GCS_ADDRESS" $((workers + 1)) "$wait_seconds" "$state_dir/nodes.json" >"$wait_log" 2>&1 <<'EOF'
import json, sys, time
import ray

address, expected, wait_seconds, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ray.init(address=address, logging_level="ERROR", log_to_driver=False)
deadline = time.monotonic() + wait_seconds
while True:
    alive = [n for n in ray.nodes() if n["Alive"]]
    if len(alive) >= expected:
        break
    if time.monotonic() > deadline:
        sys.exit(f"only {len(alive)} of {expected} nodes joined within {wait_seconds:.0f} s")
    time.sleep(0.5)
nodes = [{"node_id": n["NodeID"], "node_name": n["NodeName"], "resources": n["Resources"]} for n in alive]
with open(out, "w") as f:
    json.dump(sorted(nodes, key=lambda n: n["node_name"]), f, indent=1)
EOF
  then
    tail -n 20 "$wait_log" >&2
    die "not every node joined (log: $wait_log)"
  fi
  trap - EXIT

  write_exports
  grep '^[eu]' "$state_dir/env.sh"   # the export lines, for eval
  say "Local Ray cluster up: head + $workers workers (state: $state_dir)"
  say "  GCS address        $GCS_ADDRESS"
  say "  dashboard/Jobs API $DASHBOARD_URL"
  say "  token              $TOKEN_PATH (RAY_AUTH_MODE=token)"
  say "  node ids           $state_dir/nodes.json"
  say "Use it:  source $state_dir/env.sh"
  say "         ray job submit --address $DASHBOARD_URL --working-dir . -- python jobs/full_grid.py --preset tiny"
  say "Stop it: $0 stop --state-dir $state_dir"
}

cmd_stop() {
  if [ ! -e "$state_file" ]; then
    say "no local cluster recorded in $state_dir; nothing to stop"
    return 0
  fi
  # shellcheck disable=SC1090
  . "$state_file"
  [ -n "${RAY_TMP:-}" ] || die "$state_file names no Ray temp dir; refusing to guess which processes are ours"
  local pid comm raylets=() gcs=() others=() left
  for pid in $(cluster_pids); do
    comm=$(ps -o comm= -p "$pid" 2>/dev/null) || continue
    case "$comm" in
      raylet) raylets+=("$pid") ;;
      gcs_server) gcs+=("$pid") ;;
      *) others+=("$pid") ;;
    esac
  done
  # The order of `ray stop`: raylets first (they take their workers with them), the GCS last.
  terminate ${raylets[@]+"${raylets[@]}"}
  terminate ${others[@]+"${others[@]}"}
  terminate ${gcs[@]+"${gcs[@]}"}
  left=$(cluster_pids)
  if [ -n "$left" ]; then
    kill -KILL $left 2>/dev/null || true
    # shellcheck disable=SC2086
    wait_gone 5 $left || die "processes still running: $left"
  fi
  rm -f "$state_dir/cluster.env" "$state_dir/env.sh" "$state_dir/nodes.json" "$TOKEN_PATH"
  if [ "${keep_logs:-0}" = 1 ]; then
    say "logs kept: $state_dir/logs and Ray's own logs in $RAY_TMP (delete both when done)"
  else
    rm -rf "$RAY_TMP" "$state_dir/logs"
    rmdir "$state_dir" 2>/dev/null || true
  fi
  say "stopped the local Ray cluster of $state_dir ($((${#raylets[@]} + ${#gcs[@]} + ${#others[@]})) processes)"
}

cmd_status() {
  [ -e "$state_file" ] || die "no local cluster recorded in $state_dir"
  . "$state_file"
  RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$TOKEN_PATH ray status --address "$GCS_ADDRESS"
}

cmd_env() {
  [ -e "$state_dir/env.sh" ] || die "no local cluster recorded in $state_dir"
  grep '^[eu]' "$state_dir/env.sh"
}

case "$command" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
