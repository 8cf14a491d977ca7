// Package ping answers what load balancers and operators ask a hanode node:
// "are you the active member of your HA group?" and "what do you know?".
//
// Routes (GET and HEAD only; any other method on them answers 405, including
// OPTIONS, so a balancer mistakenly probing with OPTIONS sees every node down
// instead of every node up):
//
//	/v2/ping/net/:netid/     200 "ok" when active, else 200 "standby"
//	/v2/ping/net/:netid/se/  200 "ok" when active, else 503 "standby"
//	/v2/status               200, indented JSON (see Status)
//	/                        200, the status page, HTML for people (page.go)
//	/v2/status/events        the page's live stream, server-sent events (live.go)
//
// The admin API (admin.go: POST /v2/admin/pause, resume, switchover) needs
// a bearer token over HTTP. ServeSocket serves it, with /v2/status and
// /v2/history and nothing else, on the admin socket (socket.go), a Unix
// socket of mode 0600 whose peers are checked (SO_PEERCRED): the node's
// user and root need no token there.
//
// The ping bodies are exactly "ok" or "standby" with no trailing newline,
// text/plain; charset=UTF-8, with Content-Length and Cache-Control: no-store.
// HEAD answers the same status and headers with no body. The trailing slash is
// part of the route: "/v2/ping/net/1" is 404, as is any netid other than the
// node's own, and an empty one. Everything else answers 404 with a short text
// body.
//
// Handlers see the elector only through ha.StateReader: every request calls
// State exactly once (a live stream, once per poll), so one answer is
// consistent, and nothing is cached, so a change is visible to the next
// request. A handler never talks to ZooKeeper.
// Only the ha phase "active" answers "ok"; standby, starting, disconnected and
// any phase this package does not know answer "standby".
//
// Nothing is logged per request above debug level: balancers poll constantly.
//
// A ping costs as little as the protocol allows: Serve answers the two ping
// routes on the connection itself, without net/http, allocations or locks
// (wire.go, fast.go), and hands every other request to net/http and echo,
// whose answers the fast paths reproduce byte for byte. Serve also bounds
// what connections cost: at most a fixed number are open, the one waiting
// longest for its request is closed to let a new one in, unfinished requests
// and idle connections time out, and memory goes back to the OS after a
// burst (conns.go). A client holding thousands of half-sent requests open
// neither grows the process nor keeps a balancer's probe out. Requests other
// than pings are paced, at most one per 2 ms, each waiting for its turn
// (pace.go): a client asking /metrics or the status page in a loop gets its
// answers at that pace and cannot take the CPU the pings need.
package ping
