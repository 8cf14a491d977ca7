#!/usr/bin/env bash
# make demo: ZooKeeper in a container, a three-node primary group started from
# etc/default/examples/primary-{1,2,3}, then the leader is stopped three times —
# gracefully (SIGTERM), by a crash of hanode alone (SIGKILL: its duty guard
# releases) and of hanode with its guard (the lease is waited out) — and the
# takeovers are timed
# (`hanode watch` times the graceful one as a client sees it).
#
# Environment: DEMO_ZK_PORT (default 2181), DEMO_KEEP=1 leaves everything
# running for you to explore; `make demo-stop` (scripts/demo.sh stop) ends it.
# A demo refuses to start while another one runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin=bin/hanode
image="${HANODE_ZK_IMAGE:-hanode-zookeeper:3.8-2}"
port="${DEMO_ZK_PORT:-2181}"
zk="127.0.0.1:$port"
dir=.demo
pids="$dir/pids" # "NAME PID" per line: what demo-stop ends
names=(primary-1 primary-2 primary-3)
declare -A http=([primary-1]=127.0.0.1:9641 [primary-2]=127.0.0.1:9642 [primary-3]=127.0.0.1:9643)
declare -A pid=()
container=hanode-demo-zk

# The processes of a demo still running: "NAME PID" lines of $pids whose
# process lives and is hanode.
running_pids() {
  [ -f "$pids" ] || return 0
  local n p
  while read -r n p; do
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null && grep -q hanode "/proc/$p/cmdline" 2>/dev/null; then
      echo "$n $p"
    fi
  done <"$pids"
}

if [ "${1:-}" = stop ]; then
  live=$(running_pids)
  if [ -n "$live" ]; then
    echo "demo-stop: stopping $(tr '\n' ' ' <<<"$live")"
    awk '{print $2}' <<<"$live" | xargs -r kill 2>/dev/null || true
  fi
  if docker rm -f "$container" >/dev/null 2>&1; then echo "demo-stop: removed container $container"; fi
  rm -f "$pids"
  echo "demo-stop: no demo runs"
  exit 0
fi

live=$(running_pids)
ctr=$(docker ps -q --filter "name=^${container}\$" 2>/dev/null || true)
if [ -n "$live" ] || [ -n "$ctr" ]; then
  echo "demo: a demo is already running (${live:+processes: $(tr '\n' ' ' <<<"$live")}${ctr:+container $container}); stop it with \`make demo-stop\`" >&2
  exit 1
fi

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

watcher=""
cleanup() {
  [ -n "$watcher" ] && kill "$watcher" 2>/dev/null
  [ "${DEMO_KEEP:-}" = 1 ] && { say "left running (DEMO_KEEP=1): nodes ${pid[*]}, container $container; logs in $dir/; stop with: make demo-stop"; return; }
  for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  docker rm -f "$container" >/dev/null 2>&1 || true
  rm -f "$pids"
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
# start_node NAME: starts the node and waits until it answers on its HTTP
# address; a node that exits instead (its address taken, say) or does not
# answer stops the demo, loudly.
start_node() {
  "$bin" run --env-file "etc/default/examples/$1" --zk "$zk" >>"$dir/$1.log" 2>&1 &
  pid[$1]=$!
  echo "$1 ${pid[$1]}" >>"$pids"
  wait_until 15 node_settled "$1" || true
  if ! node_answers "$1"; then
    echo >&2
    if kill -0 "${pid[$1]}" 2>/dev/null; then
      echo "demo: $1 runs but does not answer on ${http[$1]}; the end of $dir/$1.log:" >&2
    else
      echo "demo: $1 did not start (is ${http[$1]} taken? ss -ltnp | grep ${http[$1]##*:}); the end of $dir/$1.log:" >&2
    fi
    tail -n 5 "$dir/$1.log" | sed 's/^/  /' >&2
    exit 1
  fi
}
node_answers() { curl -s --max-time 0.5 "http://${http[$1]}/v2/status" 2>/dev/null | grep -Eq "\"name\": *\"$1\""; }
node_settled() { node_answers "$1" || ! kill -0 "${pid[$1]}" 2>/dev/null; }
wait_until() { # wait_until SECONDS CMD... : poll every 5 ms
  local deadline=$(( $(now_ms) + $1 * 1000 )); shift
  until "$@"; do [ "$(now_ms)" -gt "$deadline" ] && return 1; sleep 0.005; done
}
one_leader_besides() { local l; l=$(leader); [ -n "$l" ] && [ "$l" != "$1" ] && [ "$(wc -w <<<"$l")" = 1 ]; }

mkdir -p "$dir"; rm -f "$dir"/*.log "$pids"
say "ZooKeeper ($image) on $zk"
docker rm -f "$container" >/dev/null 2>&1 || true # a stopped leftover
# tickTime 500 ms: ZooKeeper checks session expiry once a tick, so a crashed
# leader's session ends at most half a second after its timeout.
docker run -d --name "$container" -p "$zk:2181" "$image" 2181 /var/lib/zookeeper 500 >/dev/null || {
  echo "demo: cannot start ZooKeeper on $zk (is the port taken? DEMO_ZK_PORT=N picks another)" >&2; exit 1; }
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
say "SIGTERM to the leader $first (hanode watch polls every node every 2 ms)"
urls=(); for n in "${names[@]}"; do urls+=("${http[$n]}"); done
"$bin" watch --interval 2ms "${urls[@]}" >"$dir/watch.log" 2>&1 &
watcher=$!
wait_until 10 bash -c "[ \$(grep -c ' (new) -> ' '$dir/watch.log') -ge 3 ]" || { echo "hanode watch did not start"; cat "$dir/watch.log"; exit 1; }
echo "  $(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)  SIGTERM to $first"
kill -TERM "${pid[$first]}"
wait_until 15 one_leader_besides "$first" || { echo "no takeover"; show; exit 1; }
second=$(leader)
wait_until 5 grep -q "takeover: $second" "$dir/watch.log" || true
kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null || true; watcher=""
grep -v ' (new) -> ' "$dir/watch.log" | sed 's/^/  /'
took=$(sed -n "s/.*takeover: $second answered active \([0-9.]*\) ms after.*/\1/p" "$dir/watch.log" | head -n 1)
echo "  $second took over: no node answered active for ${took:-?} ms, as hanode watch saw it (graceful"
echo "  handover: the leader stops its duty, writes its release, and the next member claims at once)"
wait "${pid[$first]}" 2>/dev/null || true
start_node "$first"
wait_until 15 bash -c "[ \"\$(curl -s --max-time 0.5 http://${http[$first]}/v2/ping/net/1/)\" = standby ]" || true
echo "  $first restarted and rejoined as standby"
show

say "SIGKILL to the leader $second alone (a crash of hanode: its duty guard sees it exit)"
t0=$(now_ms); kill -KILL "${pid[$second]}"; wait "${pid[$second]}" 2>/dev/null || true
wait_until 15 one_leader_besides "$second" || { echo "no takeover"; show; exit 1; }
t1=$(now_ms); third=$(leader)
echo "  $third took over in $((t1 - t0)) ms: the kernel told $second's duty guard that hanode"
echo "  exited; the guard stopped the duty, then wrote the release hanode would have written"
start_node "$second"
wait_until 15 bash -c "[ \"\$(curl -s --max-time 0.5 http://${http[$second]}/v2/ping/net/1/)\" = standby ]" || true
echo "  $second restarted and rejoined as standby"
show

say "SIGKILL to the leader $third and its duty guard together (as when its machine dies)"
t0=$(now_ms); kill -KILL $(pgrep -P "${pid[$third]}" || true) "${pid[$third]}"; wait "${pid[$third]}" 2>/dev/null || true
wait_until 15 one_leader_besides "$third" || { echo "no takeover"; show; exit 1; }
t1=$(now_ms); fourth=$(leader)
echo "  $fourth took over in $((t1 - t0)) ms: nobody could release, so it waited out the lease, 4.08 s"
echo "  after the last extension it saw (up to 0.93 s before the kill), without waiting for"
echo "  ZooKeeper to expire the dead session"
show
"$bin" status --zk "$zk"

say "the duty (ACTIVE_CMD) ran only on the leader of each term:"
grep -h "term .* active" "$dir"/*.log | sort | awk '{print "  " $0}' | uniq -f2 -c | head -20 || true
