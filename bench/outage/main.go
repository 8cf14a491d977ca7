// Command outage measures what hanode costs while ZooKeeper is unreachable
// (BENCHMARKS.md, "Memory while ZooKeeper is away"): it
// runs `hanode run` twice, once against a port that refuses connections
// and once against one that accepts them and never answers, samples both
// processes' RSS every interval for the duration, and prints the largest
// and the last reading and how many times each replaced its client.
//
//	go run ./bench/outage -hanode bin/hanode -duration 1h
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	bin := flag.String("hanode", "bin/hanode", "the hanode binary")
	duration := flag.Duration("duration", time.Hour, "how long ZooKeeper stays away")
	every := flag.Duration("every", 30*time.Second, "RSS sampling interval")
	timeout := flag.String("session", "4s", "ZK_SESSION_TIMEOUT (the client is replaced after this without a session)")
	flag.Parse()

	// A listener that accepts and never answers: ZooKeeper hung, or a
	// firewall that lets SYNs through.
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	go func() {
		var held []net.Conn
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // never read, never written, never closed
		}
	}()
	// A port that refuses: ZooKeeper down.
	refuse, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	refused := refuse.Addr().String()
	refuse.Close()

	dir, err := os.MkdirTemp("", "hanode-outage")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	type run struct {
		name, log string
		cmd       *exec.Cmd
		max, last int
	}
	var runs []*run
	for _, c := range []struct{ name, zk string }{{"refused", refused}, {"silent", hole.Addr().String()}} {
		env := filepath.Join(dir, c.name+".env")
		body := fmt.Sprintf("NAME=%q\nROLE=primary\nHA_ID=outage\nZK=%q\nZK_SESSION_TIMEOUT=%q\nHTTP_LISTEN=127.0.0.1:0\nACTIVE_CMD='exec sleep 100000'\n",
			"outage-"+c.name, c.zk, *timeout)
		if err := os.WriteFile(env, []byte(body), 0o644); err != nil {
			fail(err)
		}
		r := &run{name: c.name, log: filepath.Join(dir, c.name+".log")}
		out, err := os.Create(r.log)
		if err != nil {
			fail(err)
		}
		r.cmd = exec.Command(*bin, "run", "--env-file", env)
		r.cmd.Stdout, r.cmd.Stderr = out, out
		if err := r.cmd.Start(); err != nil {
			fail(err)
		}
		defer r.cmd.Process.Kill()
		runs = append(runs, r)
	}
	fmt.Printf("ZooKeeper away for %s, ZK_SESSION_TIMEOUT=%s; RSS every %s (KB)\n", *duration, *timeout, *every)
	end := time.Now().Add(*duration)
	for {
		for _, r := range runs {
			kb := rss(r.cmd.Process.Pid)
			r.last, r.max = kb, max(r.max, kb)
		}
		fmt.Printf("%s", time.Now().UTC().Format("15:04:05"))
		for _, r := range runs {
			fmt.Printf("  %s %d", r.name, r.last)
		}
		fmt.Println()
		if time.Now().After(end) {
			break
		}
		time.Sleep(*every)
	}
	for _, r := range runs {
		fmt.Printf("%-8s RSS max %.1f MB, last %.1f MB; client replaced %d times\n", r.name,
			float64(r.max)/1024, float64(r.last)/1024, count(r.log, "starting a fresh client"))
	}
}

func rss(pid int) int {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

func count(file, s string) int {
	b, _ := os.ReadFile(file)
	return strings.Count(string(b), s)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "outage:", err)
	os.Exit(1)
}
