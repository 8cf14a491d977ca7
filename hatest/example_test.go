package hatest_test

import (
	"context"
	"sync"
	"testing"

	"github.com/hanode/hanode/hatest"
)

// A failover test of your own duty, as it would stand in your package as
// func TestFailover(t *testing.T): a crash of the leader, then a graceful
// switchover. (runTest stands for `go test` running it.)
func Example() {
	runTest(func(t *testing.T) {
		var mu sync.Mutex
		terms := map[string]int64{} // the term each member last led in
		g := hatest.NewGroup(t, hatest.Config{Nodes: 3, Duty: func(ctx context.Context, l hatest.Lead) error {
			mu.Lock()
			terms[l.Node] = l.Term
			mu.Unlock()
			<-ctx.Done() // your duty works here until the leadership ends
			return nil
		}})
		first := g.WaitActive()
		g.Kill(first)            // a crash: the next member waits out the lease
		second := g.WaitActive() // about 2 s later (Config.SessionTimeout)
		g.Start(first)           // it rejoins as a standby
		third := g.Switchover()  // the leader hands over at once
		mu.Lock()
		defer mu.Unlock()
		if second == first || third == second || terms[third] <= terms[second] || terms[second] <= terms[first] {
			t.Errorf("leaders %s, %s, %s with terms %v", first, second, third, terms)
		}
	})
}
