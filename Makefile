# hanode — two commands do everything on a fresh machine:
#   make demo   build, start ZooKeeper and a three-node group, kill the leader, show the takeover
#   make test   the whole suite against real ZooKeeper (builds its image first when missing)

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
ZK_IMAGE    ?= $(or $(HANODE_ZK_IMAGE),hanode-zookeeper:3.8-2)
TEST_TIMEOUT ?= 60m
FUZZTIME    ?= 20s

export PATH := $(PATH):/usr/local/go/bin
export HANODE_ZK_IMAGE := $(ZK_IMAGE)

.PHONY: all build zk-image test test-unit fuzz vet demo bench clean

all: build

## build: compile bin/hanode
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/hanode ./cmd/hanode

## zk-image: build the ZooKeeper test image from Debian's packages when missing
zk-image:
	@bash scripts/zk-image.sh $(ZK_IMAGE)

## vet: gofmt and go vet
vet:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...

## test: vet, the whole suite under the race detector, the election
## simulator's SIM_RUNS seeded scenarios (without the race detector: a
## scenario is one goroutine), and a short fuzz run
SIM_RUNS ?= 10000
test: zk-image vet
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) --no-print-directory sim
	$(MAKE) --no-print-directory fuzz

## sim: the deterministic election simulator (ha/sim_test.go): SIM_RUNS
## seeded scenarios; a failing seed prints the command that replays it
.PHONY: sim
sim:
	$(GO) test -count=1 -timeout 20m -run '^TestSimulation' -v ./ha -sim.runs=$(SIM_RUNS)

## test-faults: the fault-injection suite alone (docs/faults.md); the soak
## reads HANODE_SOAK_SEED and HANODE_SOAK_FAULTS (here 100 unless set) from the environment
.PHONY: test-faults
test-faults: zk-image
	HANODE_SOAK_FAULTS=$${HANODE_SOAK_FAULTS:-100} $(GO) test -race -count=1 -timeout 45m -v ./faults

## test-unit: the tests that need no Docker
test-unit:
	$(GO) test -race -count=1 ./conf ./ping ./roles/...
	$(GO) test -race -count=1 ./ha -run 'TestCore|TestSimulation|Lease|Transition|Takeover|Extend|Member'

## fuzz: run the fuzzers briefly (FUZZTIME=... each)
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParseEnvFile -fuzztime=$(FUZZTIME) ./conf
	$(GO) test -run='^$$' -fuzz=FuzzNamesAreZnodeNames -fuzztime=$(FUZZTIME) ./conf
	$(GO) test -run='^$$' -fuzz=FuzzParseMember -fuzztime=$(FUZZTIME) ./ha

## package: the Debian package dist/hanode_<version>_amd64.deb (scripts/package.sh,
## packaging/; nfpm runs as a Go tool, compiled on first use)
.PHONY: package
package:
	@VERSION=$(VERSION) GO=$(GO) bash scripts/package.sh

## demo: a three-node primary group on this machine; the leader is killed, a standby takes over
demo: build zk-image
	@bash scripts/demo.sh

## demo-stop: end a demo left running (DEMO_KEEP=1) or interrupted
.PHONY: demo-stop
demo-stop:
	@bash scripts/demo.sh stop

## bench: failover times and ping handler cost (BENCH_ROUNDS failovers each; see BENCHMARKS.md)
BENCH_ROUNDS ?= 30
bench: build zk-image
	$(GO) test -run='^$$' -bench=. -benchtime=$(BENCH_ROUNDS)x -timeout 30m ./bench
	$(GO) test -run='^$$' -bench=. -benchmem ./ping

## bench-scale: the scale figures: 10, 100 and 1,000 groups x 3 members on one
## ZooKeeper, 10 groups of real processes, graceful handovers (BENCHMARKS.md "Scale"; about 6 min)
.PHONY: bench-scale
bench-scale: zk-image
	@bash scripts/bench-scale.sh

## bench-outage: RSS of hanode while ZooKeeper refuses or never answers,
## OUTAGE (default 1h) (BENCHMARKS.md, "Memory while ZooKeeper is away")
OUTAGE ?= 1h
.PHONY: bench-outage
bench-outage: build
	$(GO) run ./bench/outage -hanode bin/hanode -duration $(OUTAGE)

## bench-ping: ping throughput against bare net/http (wrk, pinned and
## unpinned; ROUNDS, DURATION) and RSS under idle connections (BENCHMARKS.md, "Ping")
.PHONY: bench-ping
bench-ping:
	@bash scripts/bench-ping.sh rss

## bench-scrape: a node's CPU, RSS and ping latency under 256 scrapers of
## /metrics and of the status page, in a loop and once a second (BENCHMARKS.md,
## "Scrapes and the status page under load"; SCRAPE_ROUNDS rounds of about 3 min;
## SCRAPE_PIN=0 leaves the processes unpinned, HANODE_BIN=... measures another build)
SCRAPE_ROUNDS ?= 1
.PHONY: bench-scrape
bench-scrape:
	$(GO) test ./bench/scrape -run '^$$' -bench . -benchtime $(SCRAPE_ROUNDS)x -timeout 60m

clean:
	rm -rf bin .demo dist
