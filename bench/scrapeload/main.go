// Command scrapeload is the scraper side of the scrape benchmark in
// bench/scrape_test.go: N goroutines, each with its own keep-alive
// connection, asking one path of a node until SIGINT or SIGTERM (or
// -duration), either in a loop (-every 0: as fast as the node answers) or
// once per -every, the goroutines' first requests spread evenly over one
// period (many Prometheus servers or dashboards).
//
//	scrapeload -url http://127.0.0.1:PORT/metrics [-clients 256] [-every 0|1s] [-duration 0]
//
// It sends Accept-Encoding: gzip, as Prometheus does, and reads every
// answer to its end without decompressing it. Once every goroutine runs it
// prints "ready"; when it stops, one line of JSON (Summary). SIGUSR1
// pauses the scrapers (their connections stay open, idle) and prints
// "paused" once no request is under way; SIGUSR2 resumes them and prints
// "resumed". A scraper paused at its turn (-every) skips that turn. It runs as a
// process of its own so that the benchmark can give it a CPU and a lower
// priority than the process that measures the pings.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Summary is what scrapeload prints when it stops.
type Summary struct {
	Seconds  float64        `json:"seconds"`
	Running  float64        `json:"running_seconds"` // of Seconds, not paused (a pause counts once no request is under way)
	Codes    map[string]int `json:"codes"`           // answers by status code
	Errors   int            `json:"errors"`          // requests that failed without an answer
	Bytes    int64          `json:"bytes"`           // body bytes of the 200 answers
	P50ms    float64        `json:"p50_ms"`          // latency of the 200 answers
	P99ms    float64        `json:"p99_ms"`
	FirstErr string         `json:"first_error,omitempty"`
}

func main() {
	url := flag.String("url", "", "what to scrape, http://HOST:PORT/PATH")
	clients := flag.Int("clients", 256, "concurrent scrapers, each with its own connection")
	every := flag.Duration("every", 0, "each scraper's period; 0: loop without pause")
	duration := flag.Duration("duration", 0, "stop after this long; 0: at SIGINT or SIGTERM")
	flag.Parse()
	if *url == "" || *clients < 1 || *every < 0 {
		fmt.Fprintln(os.Stderr, "scrapeload: -url is required, -clients must be positive, -every not negative")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	g := newGate()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2) // before "ready"
	go g.follow(ctx, sig)
	s := run(ctx, g, *url, *clients, *every)
	if err := json.NewEncoder(os.Stdout).Encode(s); err != nil {
		fmt.Fprintln(os.Stderr, "scrapeload:", err)
		os.Exit(1)
	}
}

// scraper is one goroutine's tally.
type scraper struct {
	codes    map[int]int
	errors   int
	bytes    int64
	took     []time.Duration // of the 200 answers
	firstErr error
}

func run(ctx context.Context, g *gate, url string, clients int, every time.Duration) Summary {
	start := time.Now()
	tallies := make([]*scraper, clients)
	var wg, started sync.WaitGroup
	started.Add(clients)
	for i := range clients {
		tallies[i] = &scraper{codes: map[int]int{}}
		// The first requests are spread over one period.
		offset := every * time.Duration(i) / time.Duration(clients)
		wg.Go(func() { tallies[i].loop(ctx, g, url, every, offset, started.Done) })
	}
	started.Wait()
	fmt.Println("ready")
	wg.Wait()

	s := Summary{Seconds: time.Since(start).Seconds(), Running: g.running().Seconds(), Codes: map[string]int{}}
	var took []time.Duration
	for _, t := range tallies {
		for c, n := range t.codes {
			s.Codes[fmt.Sprint(c)] += n
		}
		s.Errors += t.errors
		s.Bytes += t.bytes
		took = append(took, t.took...)
		if s.FirstErr == "" && t.firstErr != nil {
			s.FirstErr = t.firstErr.Error()
		}
	}
	if len(took) > 0 {
		slices.Sort(took)
		s.P50ms = ms(took[len(took)/2])
		s.P99ms = ms(took[len(took)*99/100])
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loop scrapes url until ctx ends: one connection of its own (a transport
// per scraper), one request at a time.
func (s *scraper) loop(ctx context.Context, g *gate, url string, every, offset time.Duration, started func()) {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true, // the gzip header is set by hand: answers are not decompressed
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		s.fail(err)
		started()
		return
	}
	req.Header.Set("Accept-Encoding", "gzip")
	started()

	next := time.Now().Add(offset)
	for {
		if every > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(next)):
			}
			next = next.Add(every)
		}
		if ctx.Err() != nil {
			return
		}
		if every > 0 && !g.isOpen() {
			continue // paused at its turn: skip it
		}
		if !g.enter(ctx) {
			return
		}
		s.scrape(ctx, cl, req)
		g.leave()
	}
}

// scrape sends one request and reads its answer.
func (s *scraper) scrape(ctx context.Context, cl *http.Client, req *http.Request) {
	t0 := time.Now()
	res, err := cl.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.fail(err)
			pause(ctx) // a refused dial must not spin
		}
		return
	}
	n, err := io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	if err != nil {
		if ctx.Err() == nil {
			s.fail(err)
		}
		return
	}
	s.codes[res.StatusCode]++
	if res.StatusCode == http.StatusOK {
		s.bytes += n
		s.took = append(s.took, time.Since(t0))
	}
}

func (s *scraper) fail(err error) {
	s.errors++
	if s.firstErr == nil {
		s.firstErr = err
	}
}

// pause waits 10 ms or until ctx ends.
func pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Millisecond):
	}
}

// gate pauses and resumes the scrapers.
type gate struct {
	mu     sync.Mutex
	open   chan struct{} // closed while the scrapers run
	paused bool
	busy   int           // requests under way
	idle   chan struct{} // signalled when busy drops to 0 while paused
	// ran is the time spent running (open, or paused with requests still
	// under way) before opened, the last opening.
	ran    time.Duration
	opened time.Time
}

func newGate() *gate {
	g := &gate{open: make(chan struct{}), idle: make(chan struct{}, 1), opened: time.Now()}
	close(g.open)
	return g
}

// follow pauses at SIGUSR1 and resumes at SIGUSR2 until ctx ends.
func (g *gate) follow(ctx context.Context, sig <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-sig:
			if s == syscall.SIGUSR1 {
				g.pause(ctx)
				fmt.Println("paused")
			} else {
				g.resume()
				fmt.Println("resumed")
			}
		}
	}
}

func (g *gate) isOpen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.paused
}

// enter waits until the gate is open and counts a request under way; false
// when ctx ended first.
func (g *gate) enter(ctx context.Context) bool {
	for {
		g.mu.Lock()
		if !g.paused {
			g.busy++
			g.mu.Unlock()
			return true
		}
		open := g.open
		g.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-open:
		}
	}
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy--
	if g.busy == 0 && g.paused {
		select {
		case g.idle <- struct{}{}:
		default:
		}
	}
}

// pause closes the gate and waits until no request is under way.
func (g *gate) pause(ctx context.Context) {
	g.mu.Lock()
	if g.paused {
		g.mu.Unlock()
		return
	}
	g.paused, g.open = true, make(chan struct{})
	select { // a stale signal from an earlier pause
	case <-g.idle:
	default:
	}
	busy := g.busy
	g.mu.Unlock()
	if busy > 0 {
		select {
		case <-ctx.Done():
		case <-g.idle:
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ran += time.Since(g.opened) // the requests under way ran till now
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		g.paused, g.opened = false, time.Now()
		close(g.open)
	}
}

// running is how long the scrapers have run: open, or paused with
// requests under way.
func (g *gate) running() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		return g.ran
	}
	return g.ran + time.Since(g.opened)
}
