package ping

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hanode/hanode/ha"
)

// The cluster-wide polling cycle.
//
//	GET /v2/cycle                     the highest cycle this node has seen, at once
//	GET /v2/cycle?after=N[&wait=30s]  a long poll: answers as soon as the cycle
//	                                  is above N, or when wait has passed
//
// Both answer 200 with StatusCycle as JSON. A long poll that times out
// answers 200 with the cycle as it is (n not above after): a client
// compares n and asks again, with no status code to tell apart. wait
// defaults to 30s and is at most 5m; bad parameters answer 400. At most
// maxCyclePolls polls wait at once; more answer 503 with Retry-After. A
// poll waiting when the server shuts down answers at once. HEAD never
// waits. Without a cycle source (a standalone node) the route is 404.

// PathCycle is the cycle's route.
const PathCycle = "/v2/cycle"

const (
	cycleWaitDefault = 30 * time.Second
	cycleWaitMax     = 5 * time.Minute
	maxCyclePolls    = 256
)

// CycleSource is what the cycle's route and /v2/status read: *ha.Cycle.
type CycleSource interface {
	// Current is the highest cycle seen; false before the first.
	Current() (ha.CycleInfo, bool)
	// Wait returns once the cycle is above after, or when ctx ends.
	Wait(ctx context.Context, after int64) (ha.CycleInfo, bool)
}

// StatusCycle is a cycle as /v2/cycle and /v2/status show it; n is 0
// (and the rest empty) before this node has seen one.
type StatusCycle struct {
	N int64 `json:"n"`
	// Started is RFC 3339 with nanoseconds in UTC, the advancer's clock;
	// "" when n is 0.
	Started string `json:"started"`
	Term    int64  `json:"term"`
	// Group and By are the HA group and the server that advanced it.
	Group string `json:"group"`
	By    string `json:"by"`
}

// NewStatusCycle renders c.
func NewStatusCycle(c ha.CycleInfo) *StatusCycle {
	s := &StatusCycle{N: c.N, Term: c.Term, Group: c.Group, By: c.By}
	if !c.Started.IsZero() {
		s.Started = c.Started.UTC().Format(time.RFC3339Nano)
	}
	return s
}

// HandleCycle serves GET /v2/cycle from src. Call it before the Handler
// serves.
func (h *Handler) HandleCycle(src CycleSource) {
	cr := &cycleRoute{h: h.h, src: src}
	h.echo.Match(methods, PathCycle, cr.serve)
	h.echo.OPTIONS(PathCycle, methodNotAllowed)
}

type cycleRoute struct {
	h       *handler
	src     CycleSource
	waiting atomic.Int32
}

func (cr *cycleRoute) serve(c echo.Context) error {
	r := c.Request()
	var after int64 = -1
	wait := cycleWaitDefault
	if v := c.QueryParam("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return writeText(c, http.StatusBadRequest, []byte("after: a cycle number, 0 or more"))
		}
		after = n
	}
	if v := c.QueryParam("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > cycleWaitMax {
			return writeText(c, http.StatusBadRequest, []byte("wait: a duration above 0 and at most "+cycleWaitMax.String()))
		}
		wait = d
	}
	cur, _ := cr.src.Current()
	if after >= 0 && cur.N <= after && r.Method == http.MethodGet {
		if cr.waiting.Add(1) > maxCyclePolls {
			cr.waiting.Add(-1)
			c.Response().Header().Set("Retry-After", "1")
			return writeText(c, http.StatusServiceUnavailable, []byte("too many cycle polls waiting on this node"))
		}
		defer cr.waiting.Add(-1)
		// The server's write deadline covers a quick answer; this one
		// comes after the wait.
		_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(wait + writeTimeout))
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		go func() {
			select {
			case <-cr.h.streams.quit: // shutting down: answer now
				cancel()
			case <-ctx.Done():
			}
		}()
		cur, _ = cr.src.Wait(ctx, after)
	}
	b, err := json.Marshal(NewStatusCycle(cur))
	if err != nil {
		return err // unreachable: strings and numbers
	}
	return write(c, http.StatusOK, echo.MIMEApplicationJSON, append(b, '\n'))
}
