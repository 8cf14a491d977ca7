#!/usr/bin/env bash
# make demo: ZooKeeper in a container, a three-node primary group started from
# etc/default/examples/primary-{1,2,3}, then the leader is stopped twice —
# gracefully (SIGTERM) and by a crash (SIGKILL) — and the takeovers are timed.
#
# Environment: DEMO_ZK_PORT (default 2181), DEMO_KEEP=1 leaves everything
# running for you to explore; the printout names the node pids and the
# container to stop afterwards (kill PID..., docker rm -f CONTAINER).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin=bin/hanode
image="${HANODE_ZK_IMAGE:-hanode-zookeeper:3.8-2}"
port="${DEMO_ZK_PORT:-2181}"
zk="127.0.0.1:$port"
dir=.demo
names=(primary-1 primary-2 primary-3)
declare -A http=([primary-1]=127.0.0.1:9641 [primary-2]=127.0.0.1:9642 [primary-3]=127.0.0.1:9643)
declare -A pid=()
container=hanode-demo-zk

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

cleanup() {
  [ "${DEMO_KEEP:-}" = 1 ] && { say "left running (DEMO_KEEP=1): nodes ${pid[*]}, container $container; logs in $dir/"; return; }
  for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  docker rm -f "$container" >/dev/null 2>&1 || true
}
trap cleanup EXIT

se() { # prints "200 ok" / "503 standby" / "down" for a node
  local out
  out=$(curl -s -w ' %{http_code}' --max-time 0.5 "http://${http[$1]}/v2/ping/net/1/se/" 2>/dev/null) || true
  case "$out" in
    *" 000"|"") echo "down" ;;
    *) echo "${out##* } ${out% *}" ;;
  esac
}
leader() { # the nodes answering 200 ok on /se/ (one, or none during a takeover)
  for n in "${names[@]}"; do if [ "$(se "$n")" = "200 ok" ]; then echo "$n"; fi; done
}
show() {
  printf '  %-10s %-16s %s\n' NAME HTTP "GET /v2/ping/net/1/se/"
  for n in "${names[@]}"; do printf '  %-10s %-16s %s\n' "$n" "${http[$n]}" "$(se "$n")"; done
}
start_node() {
  "$bin" run --env-file "etc/default/examples/$1" --zk "$zk" >>"$dir/$1.log" 2>&1 &
  pid[$1]=$!
}
wait_until() { # wait_until SECONDS CMD... : poll every 5 ms
  local deadline=$(( $(now_ms) + $1 * 1000 )); shift
  until "$@"; do [ "$(now_ms)" -gt "$deadline" ] && return 1; sleep 0.005; done
}
one_leader_besides() { local l; l=$(leader); [ -n "$l" ] && [ "$l" != "$1" ] && [ "$(wc -w <<<"$l")" = 1 ]; }

mkdir -p "$dir"; rm -f "$dir"/*.log
say "ZooKeeper ($image) on $zk"
docker rm -f "$container" >/dev/null 2>&1 || true
# tickTime 500 ms: ZooKeeper checks session expiry once a tick, so a crashed
# leader's session ends at most half a second after its timeout.
docker run -d --name "$container" -p "$zk:2181" "$image" 2181 /var/lib/zookeeper 500 >/dev/null
wait_until 60 timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && echo srvr >&3 && grep -q '^Mode:' <&3" 2>/dev/null \
  || { echo "ZooKeeper did not come up"; exit 1; }
echo "  ready"

say "three nodes of HA group nsg-primary-ha (logs in $dir/)"
for n in "${names[@]}"; do start_node "$n"; done
echo "  (the first leader of a new group waits out one lease, 4.08 s here: it cannot know"
echo "   that no earlier leader still holds one; a graceful takeover does not wait)"
t0=$(now_ms)
wait_until 30 one_leader_besides none || { echo "no leader elected"; show; exit 1; }
echo "  elected in $(( $(now_ms) - t0 )) ms"
show
"$bin" status --zk "$zk"

first=$(leader)
say "SIGTERM to the leader $first"
t0=$(now_ms); kill -TERM "${pid[$first]}"
wait_until 15 one_leader_besides "$first" || { echo "no takeover"; show; exit 1; }
t1=$(now_ms); second=$(leader)
echo "  $second took over in $((t1 - t0)) ms (graceful handover: the leader stops its duty and writes its release)"
wait "${pid[$first]}" 2>/dev/null || true
start_node "$first"
wait_until 15 bash -c "[ \"\$(curl -s --max-time 0.5 http://${http[$first]}/v2/ping/net/1/)\" = standby ]" || true
echo "  $first restarted and rejoined as standby"
show

say "SIGKILL to the leader $second (a crash: the next member waits out its lease)"
t0=$(now_ms); kill -KILL "${pid[$second]}"; wait "${pid[$second]}" 2>/dev/null || true
wait_until 15 one_leader_besides "$second" || { echo "no takeover"; show; exit 1; }
t1=$(now_ms); third=$(leader)
echo "  $third took over in $((t1 - t0)) ms (4.08 s after the last lease extension it saw, which came"
echo "  up to 0.93 s before the kill; it did not wait for ZooKeeper to expire the dead session)"
show
"$bin" status --zk "$zk"

say "the duty (ACTIVE_CMD) ran only on the leader of each term:"
grep -h "term .* active" "$dir"/*.log | sort | awk '{print "  " $0}' | uniq -f2 -c | head -20 || true
