package ping

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/hanode/hanode/ha"
)

// PathHistory answers the group's history of leadership changes, oldest
// first: GET /v2/history[?limit=N] (default 100, at most ha.HistoryLimit).
const PathHistory = "/v2/history"

// HistoryReader reads the group's history (*ha.Election).
type HistoryReader interface {
	History(limit int) ([]ha.HistoryEntry, error)
}

// MountHistory serves GET /v2/history from r.
func (h *Handler) MountHistory(r HistoryReader) {
	h.h.history = r
	h.echo.Match(methods, PathHistory, h.h.historyList)
	h.echo.OPTIONS(PathHistory, methodNotAllowed)
}

func (h *handler) historyList(c echo.Context) error {
	limit := 100
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > ha.HistoryLimit {
			return adminAnswer(c, http.StatusBadRequest, "limit must be a number from 1 to "+strconv.Itoa(ha.HistoryLimit))
		}
		limit = n
	}
	entries, err := h.history.History(limit)
	if err != nil {
		return adminAnswer(c, http.StatusServiceUnavailable, err.Error())
	}
	b, err := json.MarshalIndent(map[string]any{"history": entries}, "", "  ")
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, echo.MIMEApplicationJSON, append(b, '\n'))
}
