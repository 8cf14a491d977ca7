#!/usr/bin/env bash
# Measures hanode's ping endpoint against a bare net/http handler answering
# "ok", in the same run, with wrk from outside the process (BENCHMARKS.md,
# "Ping"):
#
#   scripts/bench-ping.sh            throughput table (wrk; installed from Debian when missing)
#   scripts/bench-ping.sh rss        also the idle-connection memory table (Go benchmark in bench/)
#
# Environment: ROUNDS (5), DURATION (wrk -d, 5s), CONNS ("32 256"),
# MODES ("unpinned pinned"). Each server runs in its own pingload process
# (bench/pingload -serve ping|bare), so its CPU time is its own.
# "unpinned": servers and wrk -t2 share both cores; "pinned": the servers
# are taskset to core 0 (so GOMAXPROCS=1) and wrk -t1 to core 1. Every round
# runs each (mode, connections) cell against both servers, back to back,
# alternating which goes first; the ratio is ping / bare req/s per round, and
# the table gives medians and the range, and the server's CPU time per
# request (utime + stime from /proc/PID/stat over the run), which other load
# on the machine disturbs less than throughput.
set -euo pipefail

ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-5s}"
CONNS="${CONNS:-32 256}"
MODES="${MODES:-unpinned pinned}"
PATH_PING="/v2/ping/net/1/se/"

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench-ping: installing wrk from Debian's packages" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "bench-ping: the pinned mode needs 2 cores, this machine has $(nproc)" >&2
  exit 1
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/pingload" ./bench/pingload

dirty=""
[ -z "$(git status --porcelain -- ping bench/pingload)" ] || dirty=" + uncommitted changes in ping/ or bench/pingload"
echo "commit $(git rev-parse --short HEAD)$dirty"
echo "$(go version), $(nproc) cores, wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}')"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rounds $ROUNDS, wrk -d $DURATION, connections: $CONNS"
hz=$(getconf CLK_TCK)

# start KIND MODE: runs pingload -serve KIND (pinned to core 0 in mode
# "pinned"); sets started_pid and started_url.
start() {
  local pin=() out="$work/$1.addrs"
  [ "$2" = pinned ] && pin=(taskset -c 0)
  : >"$out"
  "${pin[@]}" "$work/pingload" -serve "$1" >"$out" 2>"$work/$1.err" &
  started_pid=$!
  pids+=("$started_pid")
  for _ in $(seq 100); do
    grep -q '^ready$' "$out" && break
    sleep 0.05
  done
  grep -q '^ready$' "$out" || { cat "$work/$1.err" >&2; exit 1; }
  started_url="http://$(awk -v k="$1" '$1 == k {print $2}' "$out")$PATH_PING"
}

# cputicks PID: user + system CPU time of the process, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run MODE CONNS PID URL [DURATION]: one wrk run; sets rps (requests per
# second) and cpu (the server's CPU microseconds per request).
run() {
  local pin=(taskset -c 0,1) threads=2
  if [ "$1" = pinned ]; then pin=(taskset -c 1); threads=1; fi
  local out c0 c1
  c0=$(cputicks "$3")
  out=$("${pin[@]}" wrk -t"$threads" -c"$2" -d"${5:-$DURATION}" "$4")
  c1=$(cputicks "$3")
  if grep -q 'Non-2xx' <<<"$out"; then
    echo "bench-ping: non-2xx answers from $4:" >&2
    echo "$out" >&2
    exit 1
  fi
  read -r rps cpu < <(awk -v c="$((c1 - c0))" -v hz="$hz" '
    /^Requests\/sec:/ {rps = $2}
    /requests in/ {n = $1}
    END {printf "%s %.2f\n", rps, c / hz * 1e6 / n}' <<<"$out")
}

results="$work/results" # mode conns round ping-rps bare-rps ping-cpu bare-cpu
: >"$results"
for mode in $MODES; do
  start ping "$mode"
  ping_pid=$started_pid ping_url=$started_url
  start bare "$mode"
  bare_pid=$started_pid bare_url=$started_url
  for c in $CONNS; do # warm both servers up
    run "$mode" "$c" "$ping_pid" "$ping_url" 1s
    run "$mode" "$c" "$bare_pid" "$bare_url" 1s
  done
  for r in $(seq "$ROUNDS"); do
    for c in $CONNS; do
      if [ $((r % 2)) -eq 1 ]; then
        run "$mode" "$c" "$ping_pid" "$ping_url"; p=$rps pc=$cpu
        run "$mode" "$c" "$bare_pid" "$bare_url"; b=$rps bc=$cpu
      else
        run "$mode" "$c" "$bare_pid" "$bare_url"; b=$rps bc=$cpu
        run "$mode" "$c" "$ping_pid" "$ping_url"; p=$rps pc=$cpu
      fi
      echo "$mode $c $r $p $b $pc $bc" >>"$results"
      awk -v m="$mode" -v c="$c" -v r="$r" -v p="$p" -v b="$b" -v pc="$pc" -v bc="$bc" 'BEGIN {
        printf "  %-8s c=%-4s round %s: ping %6.0f/s %5.1f us   bare %6.0f/s %5.1f us   ratio %.3f\n", m, c, r, p, pc, b, bc, p / b }' >&2
    done
  done
  kill "$ping_pid" "$bare_pid"
  wait "$ping_pid" "$bare_pid" 2>/dev/null || true
  pids=()
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| mode | conns | ping req/s | bare req/s | ratio (median, min–max) | server CPU per request, ping / bare |"
echo "|---|---|---|---|---|---|"
for mode in $MODES; do
  for c in $CONNS; do
    awk -v m="$mode" -v c="$c" '
      function median(a, n,   i, j, t) {
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
      $1 == m && $2 == c { n++; p[n] = $4; b[n] = $5; r[n] = $4 / $5; pc[n] = $6; bc[n] = $7 }
      END {
        mp = median(p, n); mb = median(b, n); mr = median(r, n); mpc = median(pc, n); mbc = median(bc, n)
        printf "| %s | %s | %.0f | %.0f | **%.2f** (%.2f–%.2f) | %.1f µs / %.1f µs |\n", m, c, mp, mb, mr, r[1], r[n], mpc, mbc
      }' "$results"
  done
done

if [ "${1:-}" = rss ]; then
  echo
  go test ./bench -run '^$' -bench '^BenchmarkPingIdleConns$' -benchtime 1x -timeout 10m | grep '^|'
fi
