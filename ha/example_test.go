package ha_test

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/hanode/hanode/ha"
)

// Two processes, alpha and beta, stand in one HA group (here in one program,
// each with a Session of its own: a session is one member of a group). alpha
// leads, hands over with Resign, and beta takes over at once.
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	var running sync.WaitGroup
	defer running.Wait() // each Run stops its duty, releases the lease and leaves
	defer stop()
	join := func(name string) *ha.Election {
		sess, err := ha.OpenSession(ha.SessionConfig{
			Servers: zkServers(), // your ZooKeeper ensemble
			Root:    "/example",
			Timeout: 2 * time.Second, // the lease: how long a silent leader is waited for
			Name:    name,
		})
		check(err)
		el, err := ha.NewElection(sess, ha.ElectionConfig{Group: "db", Role: "primary", Margin: 500 * time.Millisecond,
			Callbacks: ha.Callbacks{
				StartDuty: func(ctx context.Context, term int64) { /* start the work in a goroutine; stop it when ctx ends */ },
				StopDuty:  func(reason string) error { /* return once the work has stopped */ return nil },
			}})
		check(err)
		running.Add(1)
		go func() { defer running.Done(); check(el.Run(ctx)); sess.Close() }()
		return el
	}

	alpha := join("alpha")
	check(alpha.Campaign(ctx))
	fmt.Println("leader:", alpha.Leader().Name)
	beta := join("beta")
	for l := range beta.Observe(ctx) { // until beta, in line behind alpha, sees it lead
		if l.Name == "alpha" {
			break
		}
	}
	check(alpha.Resign(ctx)) // alpha stops its duty, releases, rejoins behind beta
	check(beta.Campaign(ctx))
	fmt.Println("leader:", beta.Leader().Name)
	// Output:
	// leader: alpha
	// leader: beta
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
