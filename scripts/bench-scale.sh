#!/usr/bin/env bash
# Runs the scale benchmark (bench/scale_*_test.go; BENCHMARKS.md, "Scale")
# and prints what an entry there needs: the commit, the load average before
# and after, and the tables. Needs Docker and the hanode-zookeeper image
# (make zk-image). About 6 minutes.
#
#   scripts/bench-scale.sh                      10, 100 and 1,000 groups, 10 groups of
#                                               processes, 2 x 30 graceful handovers
#   SCALE_GROUPS=1000 scripts/bench-scale.sh    only these group counts (comma-separated)
#   SCALE_PROFILE=DIR scripts/bench-scale.sh    CPU profiles (join, idle, mass handover) and a
#                                               heap profile (idle) of the largest G, and the
#                                               test binary, into DIR:
#                                               go tool pprof -top DIR/bench.test DIR/cpu-idle-g1000.pprof
#   SCALE_TRACE=1 scripts/bench-scale.sh        count each session's ZooKeeper traffic by kind
#                                               (join and idle) through a tracing proxy
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
command -v "$GO" >/dev/null 2>&1 || GO=/usr/local/go/bin/go

dirty=""
[ -z "$(git status --porcelain 2>/dev/null)" ] || dirty=" plus uncommitted changes"
echo "bench-scale: commit $(git rev-parse --short HEAD)$dirty, $(nproc) CPUs"
echo "bench-scale: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

env=(HANODE_BENCH_SCALE=1)
args=(test ./bench -run '^TestScale$' -count=1 -v -timeout 20m)
[ -n "${SCALE_GROUPS:-}" ] && env+=("HANODE_SCALE_GROUPS=$SCALE_GROUPS")
[ -n "${SCALE_TRACE:-}" ] && env+=("HANODE_SCALE_TRACE=1")
if [ -n "${SCALE_PROFILE:-}" ]; then
  mkdir -p "$SCALE_PROFILE"
  env+=("HANODE_SCALE_PROFILE=$(cd "$SCALE_PROFILE" && pwd)")
  args+=(-o "$SCALE_PROFILE/bench.test")
fi
echo "bench-scale: ${env[*]} $GO ${args[*]}"
# testcontainers' lifecycle lines are noise here.
set +e
env "${env[@]}" "$GO" "${args[@]}" 2>&1 | grep -v -e 'lifecycle.go:'
status=${PIPESTATUS[0]}
set -e
echo "bench-scale: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
