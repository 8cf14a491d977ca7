package hatest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hanode/hanode/ha"
	"github.com/hanode/hanode/hatest"
	"github.com/hanode/hanode/internal/testwait"
)

// TestGroup runs the group's behaviours on one ZooKeeper server.
func TestGroup(t *testing.T) {
	zk := hatest.StartZooKeeper(t, hatest.ZooKeeperOptions{})

	// A frozen leader stops its duty when its lease ends and another member
	// takes over; thawed, it rejoins as a standby.
	t.Run("frozen leader is replaced and rejoins as standby", func(t *testing.T) {
		d := &dutyLog{}
		g := hatest.NewGroup(t, hatest.Config{ZooKeeper: zk, Names: []string{"a", "b"}, Duty: d.duty})
		first := g.WaitActive()
		g.Freeze(first)
		second := g.WaitActive(other(g, first)...)
		if d.running(first) {
			t.Errorf("%s's duty still runs after %s took over", first, second)
		}
		g.Thaw(first)
		testwait.For(t, 20*time.Second, first+" to rejoin as standby", func() bool {
			return g.State(first).Phase == ha.PhaseStandby
		})
		if l := g.Leader(); l != second {
			t.Errorf("leader after the thaw = %q, want %q", l, second)
		}
	})

	// A stopped leader releases its lease: the next member takes over
	// without waiting for it, well within one session timeout.
	t.Run("stopped leader hands over at once", func(t *testing.T) {
		g := hatest.NewGroup(t, hatest.Config{ZooKeeper: zk, SessionTimeout: 4 * time.Second})
		first := g.WaitActive()
		begin := time.Now()
		g.Stop(first)
		second := g.WaitActive()
		if took := time.Since(begin); second == first || took > 2*time.Second {
			t.Errorf("%s took over from %s in %s; a released lease is taken at once", second, first, took)
		}
		if st := g.State(first); st.Phase != "" {
			t.Errorf("a stopped member reports %q", st.Phase)
		}
	})

	// Command runs a shell command on the leader only, with HANODE_TERM,
	// and stops it when the leadership ends.
	t.Run("command duty runs on the leader with its term", func(t *testing.T) {
		dir := t.TempDir()
		g := hatest.NewGroup(t, hatest.Config{ZooKeeper: zk, Names: []string{"a", "b"},
			Duty: hatest.Command(`echo "$HANODE_TERM" >"` + dir + `/$HANODE_NAME"; exec sleep 600`)})
		first := g.WaitActive()
		termOf := func(name string) int64 {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return 0
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			return n
		}
		testwait.For(t, 10*time.Second, "the command to write its term", func() bool { return termOf(first) > 0 })
		if got, want := termOf(first), g.State(first).Term; got != want {
			t.Errorf("HANODE_TERM = %d, want the leader's term %d", got, want)
		}
		second := g.Switchover()
		testwait.For(t, 10*time.Second, "the new leader's command to write its term", func() bool { return termOf(second) > 0 })
		if termOf(second) <= termOf(first) {
			t.Errorf("term %d of %s is not above %d of %s", termOf(second), second, termOf(first), first)
		}
	})
}

// TestDutyThatIgnoresItsContextFailsTheTest: a duty still running a margin
// after its leadership ended is reported; so is the next leader's duty
// starting beside it (after the lease: the member left without a release).
func TestDutyThatIgnoresItsContextFailsTheTest(t *testing.T) {
	rec := &recordingT{TB: t}
	release := make(chan struct{})
	defer close(release)
	g := hatest.NewGroup(rec, hatest.Config{Names: []string{"a", "b"}, Duty: func(ctx context.Context, l hatest.Lead) error {
		<-release // ignores ctx
		return nil
	}})
	first := g.WaitActive()
	g.Stop(first)
	second := g.WaitActive()
	errs := rec.errors()
	if len(errs) != 2 || !strings.Contains(errs[0], "did not return within") ||
		!strings.Contains(errs[1], "two duties at once: "+second) {
		t.Fatalf("errors reported: %q, want the duty not returning, then two duties at once", errs)
	}
}

// recordingT records Errorf instead of failing.
type recordingT struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingT) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingT) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func other(g *hatest.Group, not string) []string {
	var out []string
	for _, n := range g.Nodes() {
		if n != not {
			out = append(out, n)
		}
	}
	return out
}

// dutyLog is a duty that records which members run it.
type dutyLog struct {
	mu  sync.Mutex
	now map[string]bool
}

func (d *dutyLog) duty(ctx context.Context, l hatest.Lead) error {
	d.set(l.Node, true)
	<-ctx.Done()
	d.set(l.Node, false)
	return nil
}

func (d *dutyLog) set(name string, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.now == nil {
		d.now = map[string]bool{}
	}
	d.now[name] = on
}

func (d *dutyLog) running(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.now[name]
}
