// Command backend is the service behind HAProxy in hanode's balancer tests:
// a node's ACTIVE_CMD runs it, so it serves only while its node is active.
// Every answer names who served it, "<HANODE_NAME> <HANODE_TERM> <unix ns>"
// (the time it was handled), and, like nodetest's heartbeat duty, it appends
// "<unix ns> <HANODE_NAME> <HANODE_TERM> <HANODE_ROLE> <HANODE_HA_ID>" to
// the heartbeat file every 50 ms, so that the checker sees its span.
//
//	backend -listen 127.0.0.1:PORT -heartbeat FILE
//
// SIGTERM (hanode stopping the duty) ends it at once, by Go's default
// action; so does the loss of its listener.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "", "address to serve on")
	beats := flag.String("heartbeat", "", "file to append a heartbeat line to every 50 ms")
	flag.Parse()
	name, term := os.Getenv("HANODE_NAME"), os.Getenv("HANODE_TERM")
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	if *beats != "" {
		go heartbeat(*beats, fmt.Sprintf("%s %s %s %s", name, term, os.Getenv("HANODE_ROLE"), os.Getenv("HANODE_HA_ID")))
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "%s %s %d\n", name, term, time.Now().UnixNano())
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	err = srv.Serve(ln)
	fmt.Fprintln(os.Stderr, "backend:", err)
	os.Exit(1)
}

// heartbeat appends "<unix ns> rest" to file every 50 ms, one write each.
func heartbeat(file, rest string) {
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	for ; ; <-tick.C {
		if _, err := fmt.Fprintf(f, "%d %s\n", time.Now().UnixNano(), rest); err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
	}
}
