package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/zktest"
)

// BenchmarkState measures the group's state area (BENCHMARKS.md, "State
// area") on a three-node group of real hanode processes and a real
// ZooKeeper: the latency of PUT /v2/state/:key on the leader (one client,
// one request after another: each is a fenced multi, fsynced by ZooKeeper,
// then a read back), how long a standby's long poll takes to wake after
// the leader's PUT was sent, and GET /v2/state/:key throughput on a
// standby with 32 keep-alive clients asking in a loop. The table goes to
// stdout.
//
//	go test ./bench -run '^$' -bench '^BenchmarkState$' -benchtime 1x -timeout 10m
func BenchmarkState(b *testing.B) {
	zk := zktest.StartWith(b, zktest.Options{TickMs: zkTickMs})
	nodes := nodetest.StartGroup(b, nodetest.GroupOptions{ZK: zk.Addr})
	c := nodetest.NewChecker(b, nodes...)
	leaderName := c.WaitSingleLeader(30 * time.Second)
	c.Stop()
	var leader, standby *nodetest.Node
	for _, n := range nodes {
		if n.Name() == leaderName {
			leader = n
		} else if standby == nil {
			standby = n
		}
	}
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	value := bytes.Repeat([]byte("v"), 100)
	const puts, polls, getConns, getFor = 1000, 200, 32, 10 * time.Second
	for b.Loop() {
		// PUT latency on the leader.
		lat := make([]time.Duration, 0, puts)
		for i := range puts {
			start := time.Now()
			code, _, err := httpDo(cl, http.MethodPut, "http://"+leader.Addr()+"/v2/state/k"+strconv.Itoa(i%50), value)
			if err != nil || code != http.StatusOK {
				b.Fatalf("PUT on the leader: %d %v", code, err)
			}
			lat = append(lat, time.Since(start))
		}

		// A standby's long poll, woken by the leader's PUT.
		wake := make([]time.Duration, 0, polls)
		for i := range polls {
			_, hdr, err := httpGet(cl, "http://"+standby.Addr()+"/v2/state/poll")
			if err != nil {
				b.Fatal(err)
			}
			ver := hdr.Get("X-Hanode-Version")
			answered := make(chan time.Time, 1)
			go func() {
				code, _, err := httpGet(cl, "http://"+standby.Addr()+"/v2/state/poll?after="+ver+"&wait=20s")
				if err != nil || code != http.StatusOK {
					b.Errorf("long poll: %d %v", code, err)
				}
				answered <- time.Now()
			}()
			// Give the poll time to reach the standby (a round trip, and
			// the pacer's batch of 10 ms): it only widens the window the
			// write is measured in; a poll that answers before the write
			// fails the run.
			time.Sleep(20 * time.Millisecond)
			sent := time.Now()
			if code, _, err := httpDo(cl, http.MethodPut, "http://"+leader.Addr()+"/v2/state/poll", []byte(strconv.Itoa(i))); err != nil || code != http.StatusOK {
				b.Fatalf("PUT: %d %v", code, err)
			}
			at := <-answered
			if at.Before(sent) {
				b.Fatalf("the long poll answered before the write")
			}
			wake = append(wake, at.Sub(sent))
		}

		// GET throughput on a standby.
		ctx, cancel := context.WithTimeout(context.Background(), getFor)
		var n, failed atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range getConns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					code, _, err := httpGet(cl, "http://"+standby.Addr()+"/v2/state/k7")
					if ctx.Err() != nil {
						return
					}
					if err != nil || code != http.StatusOK {
						failed.Add(1)
						continue
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		cancel()
		took := time.Since(start)
		if failed.Load() > 0 {
			b.Fatalf("%d GETs failed", failed.Load())
		}

		fmt.Println()
		fmt.Println("| measure | n | median | p99 | max |")
		fmt.Println("|---|---|---|---|---|")
		fmt.Println(latencyRow("PUT /v2/state/:key on the leader (100 B, 50 keys)", lat))
		fmt.Println(latencyRow("leader's PUT sent → standby's long poll answered", wake))
		fmt.Printf("\nGET /v2/state/:key on a standby, %d clients in a loop for %s: %d requests, **%.0f req/s**\n",
			getConns, getFor, n.Load(), float64(n.Load())/took.Seconds())
	}
}

func latencyRow(what string, d []time.Duration) string {
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	ms := func(x time.Duration) string { return fmt.Sprintf("%.2f ms", float64(x.Microseconds())/1000) }
	return fmt.Sprintf("| %s | %d | %s | %s | %s |", what, len(d), ms(q(0.5)), ms(q(0.99)), ms(d[len(d)-1]))
}

func httpGet(cl *http.Client, url string) (int, http.Header, error) {
	return httpDo(cl, http.MethodGet, url, nil)
}

func httpDo(cl *http.Client, method, url string, body []byte) (int, http.Header, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	res, err := cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	_, err = io.Copy(io.Discard, res.Body)
	return res.StatusCode, res.Header, err
}
