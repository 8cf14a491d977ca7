// Command pingload is the load target of scripts/bench-ping.sh and of the
// idle-connection benchmark in bench/ping_test.go: it serves hanode's real
// ping handler (ping.New through ping.Serve, exactly as cmd/hanode wires
// them) over a fake StateReader that always answers "active", and a bare
// net/http server whose handler writes "ok", the yardstick the ping server is
// compared with.
//
//	pingload [-serve ping|bare|both] [-ping ADDR] [-bare ADDR] [-netid ID]
//
// Once listening it prints one line per server, "ping ADDR" and/or
// "bare ADDR" (port 0 picks a free port), then "ready", and serves until
// SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/ping"
)

func main() {
	serve := flag.String("serve", "both", "which server to run: ping, bare or both")
	pingAddr := flag.String("ping", "127.0.0.1:0", "listen address of hanode's ping handler")
	bareAddr := flag.String("bare", "127.0.0.1:0", "listen address of the bare net/http handler")
	netID := flag.String("netid", "1", "the node's net id (pings go to /v2/ping/net/ID/se/)")
	nofile := flag.Uint64("nofile", 65536, "raise the soft open-files limit to at least this (capped by the hard limit)")
	flag.Parse()
	if err := run(*serve, *pingAddr, *bareAddr, *netID, *nofile); err != nil {
		fmt.Fprintln(os.Stderr, "pingload:", err)
		os.Exit(1)
	}
}

func run(serve, pingAddr, bareAddr, netID string, nofile uint64) error {
	if serve != "ping" && serve != "bare" && serve != "both" {
		return fmt.Errorf("-serve %q: want ping, bare or both", serve)
	}
	if err := raiseNoFile(nofile); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	errs := make(chan error, 2)
	n := 0
	if serve == "ping" || serve == "both" {
		ln, err := ping.Listen(ctx, pingAddr)
		if err != nil {
			return err
		}
		fmt.Println("ping", ln.Addr())
		// An elector publishes an immutable snapshot through an atomic
		// pointer; read it the same way.
		var snap atomic.Pointer[ha.State]
		snap.Store(&ha.State{Phase: ha.PhaseActive, Reason: "pingload", Since: time.Now()})
		src := ha.StateFunc(func() ha.State { return *snap.Load() })
		id := ping.Identity{Name: "pingload", Role: "bench", NetID: netID, Version: "bench"}
		n++
		go func() { errs <- ping.Serve(ctx, ln, ping.New(id, src, nil), nil) }()
	}
	if serve == "bare" || serve == "both" {
		ln, err := net.Listen("tcp", bareAddr)
		if err != nil {
			return err
		}
		fmt.Println("bare", ln.Addr())
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("ok"))
		})}
		n++
		go func() {
			err := srv.Serve(ln)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errs <- err
		}()
		go func() {
			<-ctx.Done()
			_ = srv.Close()
		}()
	}
	fmt.Println("ready")

	var err error
	for range n {
		err = errors.Join(err, <-errs)
	}
	return err
}

// raiseNoFile raises the soft RLIMIT_NOFILE to min(want, hard) if it is
// lower. (Go already raises it to the hard limit at start; this covers
// runtimes and platforms that do not.)
func raiseNoFile(want uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur >= want || rl.Cur >= rl.Max {
		return nil
	}
	rl.Cur = min(want, rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("setrlimit nofile %d: %w", rl.Cur, err)
	}
	return nil
}
