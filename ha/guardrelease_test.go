package ha

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/hanode/hanode/ha/internal/core"
	"github.com/hanode/hanode/internal/faultproxy"
	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// ticketLog keeps every member's latest release ticket.
type ticketLog struct {
	mu     sync.Mutex
	latest map[string][]byte
	count  map[string]int
}

func (l *ticketLog) hear(name string, t []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.latest == nil {
		l.latest, l.count = map[string][]byte{}, map[string]int{}
	}
	l.latest[name] = t
	l.count[name]++
}

func (l *ticketLog) get(name string) ([]byte, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latest[name], l.count[name]
}

// TestGuardReleaseHandsAGoneHoldersLeaseOverAtOnce: the holder is cut off
// from ZooKeeper and its lease runs out on its own clock (it is no longer
// active, its duty stopped: what a dead process is to the group); its
// guard's release with the last ticket lands, and the next member claims
// at once by rule B, long before W, and records a crash takeover. A ticket
// from before an extension is refused (ErrTicketStale) and changes nothing.
func TestGuardReleaseHandsAGoneHoldersLeaseOverAtOnce(t *testing.T) {
	zkS := zktest.Start(t)
	g := newGroup(t, zkS.Addr)
	var tickets ticketLog
	g.tickets = tickets.hear
	g.watchOverlap()
	p := faultproxy.Start(t, zkS.Addr)
	a := g.startOn("a", []string{p.Addr()})
	g.waitLeader(20 * time.Second)
	b := g.start("b")
	testwait.For(t, 10*time.Second, "b standby", func() bool { return b.el.State().Phase == PhaseStandby })

	// A ticket from before an extension is stale.
	var first []byte
	var n0 int
	testwait.For(t, 5*time.Second, "a ticket", func() bool { first, n0 = tickets.get("a"); return first != nil })
	testwait.For(t, 5*time.Second, "an extension after it", func() bool { _, n := tickets.get("a"); return n > n0 })
	if cur, _ := tickets.get("a"); bytes.Equal(cur, first) {
		t.Fatal("the ticket did not change with the extension: it must carry the node's new version")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log := zaptest.NewLogger(t)
	if _, err := ReleaseAfterExit(ctx, first, nil, log); !errors.Is(err, ErrTicketStale) {
		t.Fatalf("a ticket from before an extension: %v, want ErrTicketStale", err)
	}
	if !a.el.State().Active() || b.el.State().Active() {
		t.Fatal("a stale ticket changed who leads")
	}

	// a is cut off: once its own clock ends its lease, it is gone for the
	// group, and its last ticket releases. (A real guard sends it only
	// before the lease's end, roles' rule; here: what the write does.)
	p.Stall()
	testwait.For(t, 10*time.Second, "a's lease to run out on its clock", func() bool { return !a.el.State().Active() })
	last, _ := tickets.get("a")
	// The guard is not cut off with a (it dials on its own): the ticket
	// names a's proxy, the guard reaches the server.
	var rt releaseTicket
	if err := json.Unmarshal(last, &rt); err != nil {
		t.Fatal(err)
	}
	rt.Servers = []string{zkS.Addr}
	last, _ = json.Marshal(rt)
	start := time.Now()
	term, err := ReleaseAfterExit(ctx, last, nil, log)
	if err != nil {
		t.Fatalf("release with a's last ticket: %v", err)
	}
	testwait.For(t, 5*time.Second, "b to lead", func() bool { return b.el.State().Active() })
	took := time.Since(start)
	t.Logf("b leads %v after the guard's release of term %d (W is %v)", took, term, core.TakeoverWait(g.timeout))
	if took > core.TakeoverWait(g.timeout)/2 {
		t.Fatalf("b took %v after the release: it waited instead of claiming by rule B", took)
	}
	if r := b.el.State().Reason; !strings.Contains(r, "rule B") {
		t.Fatalf("b leads with %q, want a claim by rule B", r)
	}
	testwait.For(t, 5*time.Second, "b's history entry", func() bool {
		h, err := b.el.History(10)
		return err == nil && len(h) > 0 && h[len(h)-1].To == "b" && h[len(h)-1].Cause == CauseCrash
	})
	p.Heal()
	testwait.For(t, 20*time.Second, "a back as a standby", func() bool { return a.el.State().Phase == PhaseStandby })
}
