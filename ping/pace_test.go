package ping

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hanode/hanode/ha"
)

func TestPacerHandsOutTurnsAGapApartInArrivalOrder(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := &pacer{gap: 10 * time.Millisecond}
	for _, step := range []struct {
		name     string
		now, got time.Time
	}{
		{"the first request goes at once", t0, t0},
		{"one arriving with it waits a gap", t0, t0.Add(10 * time.Millisecond)},
		{"a later one queues behind both", t0.Add(5 * time.Millisecond), t0.Add(20 * time.Millisecond)},
		{"after a quiet second, at once again", t0.Add(time.Second), t0.Add(time.Second)},
		{"and the next a gap later", t0.Add(time.Second), t0.Add(time.Second + 10*time.Millisecond)},
	} {
		assert.Equal(t, step.got, p.turn(step.now), step.name)
	}
}

func TestPacedRequestsWakeTogetherAtTheEndOfTheirBatch(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := &pacer{gap: time.Millisecond, batch: 10 * time.Millisecond}
	assert.Equal(t, t0, p.turn(t0), "the first request goes at once")
	for i := 1; i <= 10; i++ { // turns t0+1ms .. t0+10ms
		assert.Equal(t, t0.Add(10*time.Millisecond), p.turn(t0), "turn %d wakes with its batch", i)
	}
	assert.Equal(t, t0.Add(20*time.Millisecond), p.turn(t0), "turn 11 wakes with the next batch")
	assert.Equal(t, t0.Add(time.Second), p.turn(t0.Add(time.Second)), "after a quiet second, at once again")
	assert.Equal(t, t0.Add(time.Second+10*time.Millisecond), p.turn(t0.Add(time.Second+time.Microsecond)),
		"batches count from the first turn")
}

func TestAtShutdownNoRequestWaitsForItsTurn(t *testing.T) {
	quit := make(chan struct{})
	p := &pacer{gap: time.Hour, quit: quit}
	p.wait() // the first turn is now
	served := make(chan struct{})
	go func() {
		p.wait()
		close(served)
	}()
	close(quit)
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("a request kept waiting after the shutdown began")
	}
}

// TestPingsAreNeverPacedOtherRequestsWaitTheirTurn: with turns an hour
// apart, the first status request is answered and the next one waits, while
// pings, on the wire path and through net/http alike, are answered at once.
func TestPingsAreNeverPacedOtherRequestsWaitTheirTurn(t *testing.T) {
	lim := testLimits()
	lim.pace = time.Hour
	addr := startServe(t, New(testID, fixed(ha.PhaseActive), nil), lim, nil)

	// One connection: a status request hands it to net/http, then a ping
	// on it is net/http's.
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	r := bufio.NewReader(c)
	for _, path := range []string{PathStatus, "/v2/ping/net/1/se/", "/v2/ping/net/1/"} {
		_, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		res, err := http.ReadResponse(r, nil)
		require.NoError(t, err, path)
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		assert.Equal(t, http.StatusOK, res.StatusCode, path)
	}

	// A ping on a new connection: the wire path.
	cl := &http.Client{Timeout: 5 * time.Second}
	code, body := get(t, cl, "http://"+addr+"/v2/ping/net/1/se/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok", body)

	// The next status request's turn is an hour away.
	short := &http.Client{Timeout: 200 * time.Millisecond}
	_, err = short.Get("http://" + addr + PathStatus)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "a second status request was answered (%v), want it waiting", err)
	code, _ = get(t, cl, "http://"+addr+"/v2/ping/net/1/se/")
	assert.Equal(t, http.StatusOK, code, "a ping while a request waits its turn")
}
