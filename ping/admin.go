package ping

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hanode/hanode/ha"
	"github.com/labstack/echo/v4"
)

// The admin API (issue 18): what an operator asks of the group through any
// member. Every request over HTTP needs the bearer token (ADMIN_TOKEN);
// without one configured the API answers 403, saying how to turn it on. A
// request over the admin socket (socket.go) needs none: the socket serves
// only the node's user and root. The ping endpoints and /v2/status stay
// open and read-only.
const (
	PathAdminPause      = "/v2/admin/pause"
	PathAdminResume     = "/v2/admin/resume"
	PathAdminSwitchover = "/v2/admin/switchover"
)

// Admin is what the admin API asks of the node's election (*ha.Election).
type Admin interface {
	Pause(ctx context.Context, reason string) error
	Resume(ctx context.Context) error
	// Switchover hands leadership to the member named to ("" the next)
	// and returns once it leads, with its name.
	Switchover(ctx context.Context, to string) (string, error)
}

// adminTimeout bounds one admin request's work against ZooKeeper; below
// the HTTP server's writeTimeout, so the answer to a request that ran out
// (504, with why) is still written.
const adminTimeout = writeTimeout - 2*time.Second

// MountAdmin serves the admin API, calling a, for requests that carry
// token as "Authorization: Bearer <token>" ("" disables the API: 403).
func (h *Handler) MountAdmin(a Admin, token string) {
	h.h.admin, h.h.adminToken = a, sha256.Sum256([]byte(token))
	h.h.adminOn = token != ""
	h.echo.Any(PathAdminPause, h.h.adminPause)
	h.echo.Any(PathAdminResume, h.h.adminResume)
	h.echo.Any(PathAdminSwitchover, h.h.adminSwitchover)
}

// adminAllowed checks the request's method and token, answering when it
// is not allowed.
func (h *handler) adminAllowed(c echo.Context) (bool, error) {
	if c.Request().Method != http.MethodPost {
		c.Response().Header().Set(echo.HeaderAllow, http.MethodPost)
		return false, adminAnswer(c, http.StatusMethodNotAllowed, "use POST")
	}
	if fromSocket(c.Request().Context()) {
		return true, nil // the admin socket checked its peer (socket.go)
	}
	if !h.adminOn {
		return false, adminAnswer(c, http.StatusForbidden,
			"the admin API over HTTP is off on this node (no token configured): set ADMIN_TOKEN_FILE, or use the admin socket (ADMIN_SOCKET) on the node's host")
	}
	auth := c.Request().Header.Get(echo.HeaderAuthorization)
	got, ok := strings.CutPrefix(auth, "Bearer ")
	// Compared as digests of equal length, in constant time: neither the
	// token's bytes nor its length leak through timing.
	sum := sha256.Sum256([]byte(got))
	if !ok || subtle.ConstantTimeCompare(sum[:], h.adminToken[:]) != 1 {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="hanode"`)
		return false, adminAnswer(c, http.StatusUnauthorized, "missing or wrong bearer token")
	}
	return true, nil
}

// adminPause pauses the group; the reason is the request's body (at most
// 1 KB of text) or its ?reason=.
func (h *handler) adminPause(c echo.Context) error {
	if ok, err := h.adminAllowed(c); !ok {
		return err
	}
	reason := c.QueryParam("reason")
	if body, err := io.ReadAll(io.LimitReader(c.Request().Body, 1<<10)); err == nil && len(body) > 0 {
		reason = strings.TrimSpace(string(body))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), adminTimeout)
	defer cancel()
	if err := h.admin.Pause(ctx, reason); err != nil {
		return adminFailed(c, err)
	}
	return adminAnswer(c, http.StatusOK, "paused: no takeover until resumed")
}

// adminResume resumes the group.
func (h *handler) adminResume(c echo.Context) error {
	if ok, err := h.adminAllowed(c); !ok {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), adminTimeout)
	defer cancel()
	if err := h.admin.Resume(ctx); err != nil {
		return adminFailed(c, err)
	}
	return adminAnswer(c, http.StatusOK, "resumed")
}

// adminSwitchover hands leadership over: ?to=NAME (or none: the next
// member that may lead); it answers once the target leads (409 when the
// switchover is refused, with why).
func (h *handler) adminSwitchover(c echo.Context) error {
	if ok, err := h.adminAllowed(c); !ok {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), adminTimeout)
	defer cancel()
	to, err := h.admin.Switchover(ctx, c.QueryParam("to"))
	switch {
	case errors.Is(err, ha.ErrSwitchoverRefused):
		return adminAnswer(c, http.StatusConflict, err.Error())
	case err != nil:
		return adminFailed(c, err)
	}
	return adminAnswer(c, http.StatusOK, to+" leads")
}

// adminFailed answers an admin request whose work failed: 504 when it ran
// out of time, else 503 with why.
func adminFailed(c echo.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return adminAnswer(c, http.StatusGatewayTimeout, "ZooKeeper did not answer in time: "+err.Error())
	}
	return adminAnswer(c, http.StatusServiceUnavailable, err.Error())
}

// adminAnswer is an admin answer: {"result": msg} for a success, {"error":
// msg} otherwise.
func adminAnswer(c echo.Context, code int, msg string) error {
	key := "error"
	if code < 300 {
		key = "result"
	}
	b, _ := json.Marshal(map[string]string{key: msg})
	return write(c, code, echo.MIMEApplicationJSON, append(b, '\n'))
}
