package faultproxy

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/internal/testwait"
	"github.com/hanode/hanode/internal/zktest"
)

// zkSession is the session timeout of the clients here. zktest's server runs
// with a 500 ms tick, so 4 s is granted as asked and a dead session ends at
// most one tick after its timeout.
const zkSession = 4 * time.Second

// recorder is a go-zookeeper client through a proxy that records every event
// with the time it arrived.
type recorder struct {
	conn *zk.Conn

	mu     sync.Mutex
	events []stamped
	logs   []string
}

type stamped struct {
	at time.Time
	ev zk.Event
}

func (r *recorder) record(ev zk.Event) {
	r.mu.Lock()
	r.events = append(r.events, stamped{time.Now(), ev})
	r.mu.Unlock()
}

// Printf collects go-zookeeper's log; it is shown only when the test fails.
func (r *recorder) Printf(format string, args ...any) {
	r.mu.Lock()
	r.logs = append(r.logs, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func connectRecorded(t *testing.T, addr string, session time.Duration) *recorder {
	t.Helper()
	r := &recorder{}
	conn, _, err := zk.Connect([]string{addr}, session, zk.WithEventCallback(r.record), zk.WithLogger(r))
	require.NoError(t, err)
	r.conn = conn
	t.Cleanup(func() {
		conn.Close()
		if t.Failed() {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Logf("go-zookeeper log:\n%s", strings.Join(r.logs, "\n"))
			t.Logf("events: %s", formatEvents(r.events, time.Time{}))
		}
	})
	require.NoError(t, zktest.WaitSession(conn, 30*time.Second))
	return r
}

func sessionState(s zk.State) func(zk.Event) bool {
	return func(ev zk.Event) bool { return ev.Type == zk.EventSession && ev.State == s }
}

// find returns the first event at or after from that matches.
func (r *recorder) find(from time.Time, match func(zk.Event) bool) (stamped, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if !e.at.Before(from) && match(e.ev) {
			return e, true
		}
	}
	return stamped{}, false
}

// wait polls for the first event at or after from that matches.
func (r *recorder) wait(t *testing.T, from time.Time, match func(zk.Event) bool, timeout time.Duration, what string) stamped {
	t.Helper()
	var got stamped
	err := testwait.Poll(timeout, testwait.Tick, func() bool {
		var ok bool
		got, ok = r.find(from, match)
		return ok
	})
	if err != nil {
		t.Fatalf("no %s event within %v (events since: %s)", what, timeout, r.since(from))
	}
	return got
}

func (r *recorder) since(from time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var evs []stamped
	for _, e := range r.events {
		if !e.at.Before(from) {
			evs = append(evs, e)
		}
	}
	return formatEvents(evs, from)
}

func formatEvents(evs []stamped, from time.Time) string {
	var parts []string
	for _, e := range evs {
		name := e.ev.State.String()
		if e.ev.Type != zk.EventSession {
			name = fmt.Sprintf("%v %s", e.ev.Type, e.ev.Path)
		}
		if from.IsZero() {
			parts = append(parts, fmt.Sprintf("%s %s", e.at.Format("15:04:05.000"), name))
		} else {
			parts = append(parts, fmt.Sprintf("+%v %s", e.at.Sub(from).Round(time.Millisecond), name))
		}
	}
	return strings.Join(parts, ", ")
}

// fixture is one client through its own proxy, an observer connected
// directly to ZooKeeper, and an ephemeral node owned by the client's session,
// watched by the observer.
type fixture struct {
	timeout time.Duration // the client's session timeout
	proxy   *Proxy
	client  *recorder
	obs     *zk.Conn
	path    string
	session int64
	watch   <-chan zk.Event
}

func newFixture(t *testing.T, srv *zktest.Server, session time.Duration) *fixture {
	t.Helper()
	f := &fixture{timeout: session, proxy: Start(t, srv.Addr)}
	f.client = connectRecorded(t, f.proxy.Addr(), session)
	f.obs = zktest.Connect(t, srv.Addr, zkSession)
	f.session = f.client.conn.SessionID()
	require.NotZero(t, f.session)
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	path, err := f.client.conn.Create("/"+name+fmt.Sprintf("-%d", time.Now().UnixNano()), nil,
		zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	f.path = path
	ok, _, watch, err := f.obs.ExistsW(path)
	require.NoError(t, err)
	require.True(t, ok)
	f.watch = watch
	return f
}

// waitVanished waits for the observer's watch to report the node deleted.
func (f *fixture) waitVanished(t *testing.T, timeout time.Duration) time.Time {
	t.Helper()
	select {
	case ev := <-f.watch:
		require.Equal(t, zk.EventNodeDeleted, ev.Type, "watch: %+v", ev)
		return time.Now()
	case <-time.After(timeout):
		t.Fatalf("the stalled client's ephemeral node did not vanish within %v", timeout)
		return time.Time{}
	}
}

// requireSessionSurvived checks, after the fault healed, that the client is
// back in the same session without an expiry, and that its ephemeral node is
// still there after the time the session would have expired had the fault
// lasted. It returns how long after Heal a request first succeeded.
func (f *fixture) requireSessionSurvived(t *testing.T, cut, healed time.Time) time.Duration {
	t.Helper()
	// A client that never noticed the stall sends no new session event.
	if err := testwait.Poll(10*time.Second, testwait.Tick, func() bool { return f.client.conn.State() == zk.StateHasSession }); err != nil {
		t.Fatalf("no session within 10s of Heal (events since the cut: %s)", f.client.since(cut))
	}
	_, err := f.client.conn.Sync(f.path) // a round trip over the healed path
	require.NoError(t, err)
	back := time.Since(healed)
	require.Equal(t, f.session, f.client.conn.SessionID(), "session changed")
	_, expired := f.client.find(cut, sessionState(zk.StateExpired))
	require.False(t, expired, "session expired: %s", f.client.since(cut))

	// A session dead since the cut would be gone by cut + timeout + one tick.
	hold(time.Until(cut.Add(f.timeout + time.Second)))
	ok, _, err := f.obs.Exists(f.path)
	require.NoError(t, err)
	require.True(t, ok, "ephemeral node lost")
	select {
	case ev := <-f.watch:
		t.Fatalf("observer's watch fired: %+v", ev)
	default:
	}
	return back
}

// hold keeps a fault in place for d: the fault's duration is the scenario,
// not a synchronisation.
func hold(d time.Duration) {
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	<-timer.C
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func TestZooKeeper(t *testing.T) {
	srv := zktest.Start(t)

	// A stall longer than the session: the server expires the session while
	// the client, cut off, only sees Disconnected; it learns of the expiry
	// when the path heals, then go-zookeeper opens a new session.
	t.Run("StallBeyondSession", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, srv, zkSession)
		cut := time.Now()
		f.proxy.Stall()

		disc := f.client.wait(t, cut, sessionState(zk.StateDisconnected), 10*time.Second, "StateDisconnected")
		vanished := f.waitVanished(t, 15*time.Second)
		_, expired := f.client.find(cut, sessionState(zk.StateExpired))
		require.False(t, expired, "StateExpired while cut off: %s", f.client.since(cut))
		require.NotEqual(t, zk.StateHasSession, f.client.conn.State())
		stalledEvents := f.client.since(cut)

		healed := time.Now()
		f.proxy.Heal()
		exp := f.client.wait(t, healed, sessionState(zk.StateExpired), 10*time.Second, "StateExpired")
		has := f.client.wait(t, exp.at, sessionState(zk.StateHasSession), 10*time.Second, "StateHasSession after expiry")
		newSession := f.client.conn.SessionID()
		require.NotZero(t, newSession)
		require.NotEqual(t, f.session, newSession, "no new session after expiry")

		ok, _, err := f.obs.Exists(f.path)
		require.NoError(t, err)
		require.False(t, ok, "old ephemeral node came back")
		_, err = f.client.conn.Create(f.path, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		require.NoError(t, err, "new session cannot create")

		t.Logf("measure stall>session: Disconnected %s after cut; node gone for others %s after cut; "+
			"after Heal: Expired %s, HasSession (new session) %s",
			ms(disc.at.Sub(cut)), ms(vanished.Sub(cut)), ms(exp.at.Sub(healed)), ms(has.at.Sub(healed)))
		t.Logf("events while stalled: %s", stalledEvents)
		t.Logf("events after Heal: %s", f.client.since(healed))
	})

	// A stall shorter than the receive timeout (2/3 of the session, counted
	// from the last reply, which came at most a ping interval before the cut):
	// the session survives.
	t.Run("StallShort", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, srv, zkSession)
		cut := time.Now()
		f.proxy.Stall()
		hold(time.Second)
		healed := time.Now()
		f.proxy.Heal()
		back := f.requireSessionSurvived(t, cut, healed)
		_, disconnected := f.client.find(cut, sessionState(zk.StateDisconnected))
		t.Logf("measure stall 1s: Disconnected seen: %v; first request answered %s after Heal; events: %s",
			disconnected, ms(back), f.client.since(cut))
	})

	// A stall until the client notices (Disconnected), healed at once: the
	// server has not expired the session yet (it would a third of the session
	// later), so the client reconnects to the same session. go-zookeeper
	// waits a second before it redials its only server, so with a 4 s session
	// it would come back just 0.33 s before the expiry; 6 s leaves 1 s.
	t.Run("StallUntilDisconnected", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, srv, 6*time.Second)
		cut := time.Now()
		f.proxy.Stall()
		disc := f.client.wait(t, cut, sessionState(zk.StateDisconnected), 10*time.Second, "StateDisconnected")
		healed := time.Now()
		f.proxy.Heal()
		back := f.requireSessionSurvived(t, cut, healed)
		t.Logf("measure stall until Disconnected (6 s session): Disconnected %s after cut; same session answers %s after Heal; events: %s",
			ms(disc.at.Sub(cut)), ms(back), f.client.since(cut))
	})

	// A short reset: the client notices at once and, after Heal, reconnects
	// to the same session.
	t.Run("ResetShort", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, srv, zkSession)
		cut := time.Now()
		f.proxy.Reset()
		disc := f.client.wait(t, cut, sessionState(zk.StateDisconnected), 5*time.Second, "StateDisconnected")
		hold(time.Second)
		_, has := f.client.find(cut, sessionState(zk.StateHasSession))
		require.False(t, has, "session through a reset path: %s", f.client.since(cut))
		healed := time.Now()
		f.proxy.Heal()
		back := f.requireSessionSurvived(t, cut, healed)
		t.Logf("measure reset 1s: Disconnected %s after reset; same session answers %s after Heal; events: %s",
			ms(disc.at.Sub(cut)), ms(back), f.client.since(cut))
	})

	// A reset longer than the session: as with a long stall, but the client
	// notices at once.
	t.Run("ResetBeyondSession", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, srv, zkSession)
		cut := time.Now()
		f.proxy.Reset()
		disc := f.client.wait(t, cut, sessionState(zk.StateDisconnected), 5*time.Second, "StateDisconnected")
		vanished := f.waitVanished(t, 15*time.Second)
		_, expired := f.client.find(cut, sessionState(zk.StateExpired))
		require.False(t, expired, "StateExpired while refused: %s", f.client.since(cut))
		refusedEvents := f.client.since(cut)

		healed := time.Now()
		f.proxy.Heal()
		exp := f.client.wait(t, healed, sessionState(zk.StateExpired), 10*time.Second, "StateExpired")
		has := f.client.wait(t, exp.at, sessionState(zk.StateHasSession), 10*time.Second, "StateHasSession after expiry")
		require.NotEqual(t, f.session, f.client.conn.SessionID(), "no new session after expiry")
		t.Logf("measure reset>session: Disconnected %s after reset; node gone for others %s after reset; "+
			"after Heal: Expired %s, HasSession (new session) %s",
			ms(disc.at.Sub(cut)), ms(vanished.Sub(cut)), ms(exp.at.Sub(healed)), ms(has.at.Sub(healed)))
		t.Logf("events while reset: %s", refusedEvents)
		t.Logf("events after Heal: %s", f.client.since(healed))
	})
}
