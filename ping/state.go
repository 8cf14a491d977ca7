package ping

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/hanode/hanode/ha"
)

// The group's state area over HTTP (MountState).
//
//	GET    /v2/state              every key: {"synced", "keys": [{key, term, version, by, size}], "ignored"}
//	GET    /v2/state/:key         the value as the body; X-Hanode-Term, X-Hanode-Version, X-Hanode-By;
//	                              ?format=json: {key, value (base64), term, version, by, size}; 404 when absent
//	       ...?after=V&wait=30s   long poll: answers once the version differs from V (0: absent), or
//	                              when the wait ends, with the key as it is then (compare the version)
//	PUT    /v2/state/:key         the body is the value; the leader only: 200 {key, term, version, size}
//	DELETE /v2/state/:key         the leader only: 204, X-Hanode-Term
//
// Any member answers a GET from its own copy, without asking ZooKeeper. A
// write on a member that does not lead answers 409 naming the leader and
// its HTTP address ({"error", "leader", "leader_http", "term"}), or 503 when
// this member cannot tell who leads. Errors are JSON: {"error": "..."};
// 400 for a bad key or query, 413 for a value above 64 KB or a group area
// that would pass 1 MB. These requests are paced like every request but
// pings (pace.go): a node serves at most 500 a second of them.

// StateStore is what the state routes need from the group's state area;
// *ha.Election implements it.
type StateStore interface {
	GetState(key string) (ha.StateEntry, bool)
	ListState() ha.StateList
	WaitState(ctx context.Context, key string, after int64) (ha.StateEntry, bool, error)
	PutState(ctx context.Context, key string, value []byte) (ha.StateEntry, error)
	DeleteState(ctx context.Context, key string) (int64, error)
}

// The state routes, in echo's syntax.
const (
	PathState    = "/v2/state"
	PathStateKey = "/v2/state/:key"
)

// Headers of a value's answer.
const (
	HeaderStateTerm    = "X-Hanode-Term"
	HeaderStateVersion = "X-Hanode-Version"
	HeaderStateBy      = "X-Hanode-By"
)

const (
	// stateWaitDefault is a long poll's wait without ?wait=.
	stateWaitDefault = 30 * time.Second
	// stateWaitMax bounds ?wait=: a poll holds a connection, and
	// connections are capped (conns.go).
	stateWaitMax = 60 * time.Second
	// stateWriteTimeout bounds a write's ZooKeeper work; it answers within
	// the server's write timeout.
	stateWriteTimeout = 5 * time.Second
	stateAllow        = "GET, HEAD, PUT, DELETE"
)

// MountState serves the group's state area at /v2/state (see above), and
// lists its foreign znodes with the election's in /v2/status's "ignored".
// Call it before the Handler serves. A standalone node mounts none: the
// routes answer 404 there.
func (h *Handler) MountState(store StateStore) {
	h.h.store = store
	h.echo.Any(PathState, h.h.stateList)
	h.echo.Any(PathStateKey, h.h.stateKey)
}

// stateIgnored is the state area's foreign znodes for /v2/status.
func (h *handler) stateIgnored() []StatusIgnored {
	if h.store == nil {
		return nil
	}
	var out []StatusIgnored
	for _, ig := range h.store.ListState().Ignored {
		out = append(out, StatusIgnored{Znode: ig.Znode, Reason: "state: " + ig.Reason})
	}
	return out
}

type stateListJSON struct {
	Synced  bool             `json:"synced"`
	Keys    []stateEntryJSON `json:"keys"`
	Ignored []StatusIgnored  `json:"ignored"`
}

type stateEntryJSON struct {
	Key     string `json:"key"`
	Value   []byte `json:"value,omitempty"`
	Term    int64  `json:"term"`
	Version int64  `json:"version"`
	By      string `json:"by,omitempty"`
	Size    int    `json:"size"`
}

func entryJSON(en ha.StateEntry, value bool) stateEntryJSON {
	j := stateEntryJSON{Key: en.Key, Term: en.Term, Version: en.Version, By: en.By, Size: en.Size}
	if value {
		j.Value = en.Value
		if j.Value == nil {
			j.Value = []byte{}
		}
	}
	return j
}

func (h *handler) stateList(c echo.Context) error {
	switch c.Request().Method {
	case http.MethodGet, http.MethodHead:
	default:
		return stateMethodNotAllowed(c)
	}
	l := h.store.ListState()
	out := stateListJSON{Synced: l.Synced, Keys: make([]stateEntryJSON, 0, len(l.Entries)),
		Ignored: make([]StatusIgnored, 0, len(l.Ignored))}
	for _, en := range l.Entries {
		out.Keys = append(out.Keys, entryJSON(en, false))
	}
	for _, ig := range l.Ignored {
		out.Ignored = append(out.Ignored, StatusIgnored{Znode: ig.Znode, Reason: ig.Reason})
	}
	return writeJSON(c, http.StatusOK, out)
}

func (h *handler) stateKey(c echo.Context) error {
	key := c.Param("key")
	if u, err := url.PathUnescape(key); err == nil {
		key = u
	}
	if err := ha.ValidStateKey(key); err != nil {
		return writeJSONError(c, http.StatusBadRequest, err)
	}
	switch c.Request().Method {
	case http.MethodGet, http.MethodHead:
		return h.stateGet(c, key)
	case http.MethodPut:
		return h.statePut(c, key)
	case http.MethodDelete:
		return h.stateDelete(c, key)
	}
	return stateMethodNotAllowed(c)
}

func (h *handler) stateGet(c echo.Context, key string) error {
	q := c.Request().URL.Query()
	asJSON := false
	switch q.Get("format") {
	case "":
	case "json":
		asJSON = true
	default:
		return writeJSONError(c, http.StatusBadRequest, errors.New(`format: want "json" or none`))
	}
	en, ok := h.store.GetState(key)
	if a := q.Get("after"); a != "" {
		after, err := strconv.ParseInt(a, 10, 64)
		if err != nil || after < 0 {
			return writeJSONError(c, http.StatusBadRequest, errors.New("after: want a version (a number, 0 for absent)"))
		}
		wait := stateWaitDefault
		if w := q.Get("wait"); w != "" {
			if wait, err = time.ParseDuration(w); err != nil || wait < 0 || wait > stateWaitMax {
				return writeJSONError(c, http.StatusBadRequest, errors.New("wait: want a duration from 0s to "+stateWaitMax.String()))
			}
		}
		// The server's write deadline covers one answer from the request
		// on; a poll answers later.
		_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(wait + writeTimeout))
		ctx, cancel := context.WithTimeout(c.Request().Context(), wait)
		en, ok, _ = h.store.WaitState(ctx, key, after)
		cancel()
		if c.Request().Context().Err() != nil {
			return nil // the client went away
		}
	}
	hdr := c.Response().Header()
	hdr.Set(HeaderStateVersion, strconv.FormatInt(en.Version, 10))
	if !ok {
		return writeJSON(c, http.StatusNotFound, map[string]string{"error": "no such key", "key": key})
	}
	hdr.Set(HeaderStateTerm, strconv.FormatInt(en.Term, 10))
	hdr.Set(HeaderStateBy, en.By)
	if asJSON {
		return writeJSON(c, http.StatusOK, entryJSON(en, true))
	}
	return write(c, http.StatusOK, echo.MIMEOctetStream, en.Value)
}

func (h *handler) statePut(c echo.Context, key string) error {
	r := c.Request()
	if r.ContentLength > ha.MaxStateValue {
		return writeJSONError(c, http.StatusRequestEntityTooLarge, stateTooLarge(r.ContentLength))
	}
	value, err := io.ReadAll(io.LimitReader(r.Body, ha.MaxStateValue+1))
	if err != nil {
		return writeJSONError(c, http.StatusBadRequest, errors.New("reading the body: "+err.Error()))
	}
	if len(value) > ha.MaxStateValue {
		return writeJSONError(c, http.StatusRequestEntityTooLarge, stateTooLarge(int64(len(value))))
	}
	ctx, cancel := context.WithTimeout(r.Context(), stateWriteTimeout)
	defer cancel()
	en, err := h.store.PutState(ctx, key, value)
	if err != nil {
		return h.stateWriteError(c, key, err)
	}
	c.Response().Header().Set(HeaderStateTerm, strconv.FormatInt(en.Term, 10))
	c.Response().Header().Set(HeaderStateVersion, strconv.FormatInt(en.Version, 10))
	return writeJSON(c, http.StatusOK, entryJSON(en, false))
}

func stateTooLarge(n int64) error {
	return errors.New("value of " + strconv.FormatInt(n, 10) + " bytes: at most " + strconv.Itoa(ha.MaxStateValue))
}

func (h *handler) stateDelete(c echo.Context, key string) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), stateWriteTimeout)
	defer cancel()
	term, err := h.store.DeleteState(ctx, key)
	if err != nil {
		return h.stateWriteError(c, key, err)
	}
	res := c.Response()
	res.Header().Set(HeaderStateTerm, strconv.FormatInt(term, 10))
	res.Header().Set(echo.HeaderCacheControl, "no-store")
	res.WriteHeader(http.StatusNoContent)
	return nil
}

// notLeaderJSON is a write's answer on a member that does not lead.
type notLeaderJSON struct {
	Error      string `json:"error"`
	Leader     string `json:"leader"`
	LeaderHTTP string `json:"leader_http"`
	Term       int64  `json:"term"`
}

// stateWriteError answers a refused or failed write.
func (h *handler) stateWriteError(c echo.Context, key string, err error) error {
	switch {
	case errors.Is(err, ha.ErrNotLeader):
		st := h.src.State()
		if st.Leader == "" || st.Leader == h.id.Name {
			// Nobody known, or this node is about to lead (or just lost
			// it): a client should ask again shortly.
			c.Response().Header().Set("Retry-After", "1")
			return writeJSONError(c, http.StatusServiceUnavailable, err)
		}
		body := notLeaderJSON{Error: err.Error(), Leader: st.Leader, Term: st.Term}
		for _, m := range st.Members {
			if m.Name == st.Leader {
				body.LeaderHTTP = m.HTTP
			}
		}
		return writeJSON(c, http.StatusConflict, body)
	case errors.Is(err, ha.ErrBadStateKey):
		return writeJSONError(c, http.StatusBadRequest, err)
	case errors.Is(err, ha.ErrStateTooLarge), errors.Is(err, ha.ErrStateFull):
		return writeJSONError(c, http.StatusRequestEntityTooLarge, err)
	case errors.Is(err, ha.ErrStateNotFound):
		return writeJSONError(c, http.StatusNotFound, err)
	case errors.Is(err, ha.ErrOutcomeUnknown), errors.Is(err, ha.ErrStateUnavailable),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		h.log.Warn("ping: state write failed", zap.String("key", key), zap.Error(err))
		return writeJSONError(c, http.StatusServiceUnavailable, err)
	}
	h.log.Error("ping: state write failed", zap.String("key", key), zap.Error(err))
	return writeJSONError(c, http.StatusInternalServerError, err)
}

func stateMethodNotAllowed(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderAllow, stateAllow)
	return writeJSONError(c, http.StatusMethodNotAllowed, errors.New("method not allowed"))
}

func writeJSONError(c echo.Context, code int, err error) error {
	return writeJSON(c, code, map[string]string{"error": err.Error()})
}

// writeJSON answers v as one line of JSON.
func writeJSON(c echo.Context, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return write(c, code, echo.MIMEApplicationJSON, append(b, '\n'))
}
