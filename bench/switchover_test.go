package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hanode/hanode/internal/nodetest"
	"github.com/hanode/hanode/internal/zktest"
	"github.com/hanode/hanode/ping"
)

// BenchmarkSwitchover: each iteration asks the leader of a three-node group
// for a switchover to the next member (POST /v2/admin/switchover with the
// admin token, what `hanode switchover` sends) and measures the time from
// the request's send to the first "ok" of another node; no two nodes may
// ever answer ok at once, and the duties' heartbeats may not overlap.
// Patroni's switchover at ttl 4 takes 1.3–2.8 s (BENCHMARKS.md).
func BenchmarkSwitchover(b *testing.B) {
	benchSwitchover(b, func(leader *nodetest.Node, token string) error { return postSwitchover(leader, token) })
}

// BenchmarkSwitchoverCommand: as BenchmarkSwitchover, but each iteration
// runs the real `hanode switchover --env-file <the leader's env file>` (the
// operator's command: it reads the env file for the address and the token)
// and measures from its exec to the first "ok" of another node.
func BenchmarkSwitchoverCommand(b *testing.B) {
	bin := nodetest.Build(b)
	benchSwitchover(b, func(leader *nodetest.Node, _ string) error {
		out, err := exec.Command(bin, "switchover", "--env-file", leader.EnvFilePath()).CombinedOutput()
		if err != nil {
			return fmt.Errorf("hanode switchover: %v: %s", err, out)
		}
		return nil
	})
}

func benchSwitchover(b *testing.B, ask func(leader *nodetest.Node, token string) error) {
	zk := zktest.StartWith(b, zktest.Options{TickMs: zkTickMs})
	token := filepath.Join(b.TempDir(), "admin-token")
	const secret = "bench-admin-token-0123456789"
	if err := os.WriteFile(token, []byte(secret+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	haID := nodetest.GroupID(b)
	var nodes []*nodetest.Node
	for _, name := range []string{"a", "b", "c"} {
		env := nodetest.HAEnv(zk.Addr, haID, name)
		env["ADMIN_TOKEN_FILE"] = token
		nodes = append(nodes, nodetest.Start(b, nodetest.Options{Name: name, Env: env, Heartbeat: true}))
	}
	chk := nodetest.NewCheckerWith(b, nodetest.CheckerOptions{Interval: pollInterval}, nodes...)
	leader := chk.Node(chk.WaitSingleLeader(20 * time.Second))

	var rounds []round
	for b.Loop() {
		waitRandomPhase()
		done := make(chan error, 1)
		at := time.Now()
		go func() { done <- ask(leader, secret) }()
		next, took := chk.WaitTakeover(at, leader, 10*time.Second)
		if err := <-done; err != nil {
			b.Fatalf("round %d: %v", len(rounds)+1, err)
		}
		rounds = append(rounds, round{from: leader.Name(), to: next.Name(), takeover: took,
			dark: darkTime(chk, leader, at.Add(took))})
		if got := chk.WaitSingleLeader(5 * time.Second); got != next.Name() {
			b.Fatalf("round %d: %s leads, want %s", len(rounds), got, next)
		}
		leader = next
	}
	chk.Assert(b)
	report(b, chk, rounds)
}

// postSwitchover asks n for a switchover to the next member.
func postSwitchover(n *nodetest.Node, token string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL(ping.PathAdminSwitchover), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var body strings.Builder
		_, _ = fmt.Fprint(&body, res.Status)
		return fmt.Errorf("switchover on %s: %s", n, body.String())
	}
	return nil
}
