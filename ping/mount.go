package ping

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// PathMetrics is where cmd/hanode mounts the Prometheus metrics (Handle).
const PathMetrics = "/metrics"

// Handle serves h at path, for GET and HEAD like every route (any other
// method, OPTIONS included, answers 405), behind the same panic recovery
// and error answers. Call it before the Handler serves. The ping routes
// stay on their own path: a handler mounted here costs them nothing.
func (h *Handler) Handle(path string, hd http.Handler) {
	h.echo.Match(methods, path, echo.WrapHandler(hd))
	h.echo.OPTIONS(path, methodNotAllowed)
}
