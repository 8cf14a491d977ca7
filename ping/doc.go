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
//
// The ping bodies are exactly "ok" or "standby" with no trailing newline,
// text/plain; charset=UTF-8, with Content-Length and Cache-Control: no-store.
// HEAD answers the same status and headers with no body. The trailing slash is
// part of the route: "/v2/ping/net/1" is 404, as is any netid other than the
// node's own, and an empty one. Everything else answers 404 with a short text
// body.
//
// Handlers see the elector only through ha.StateReader: every request calls
// State exactly once, so one answer is consistent, and nothing is cached, so a
// change is visible to the next request. A handler never talks to ZooKeeper.
// Only the ha phase "active" answers "ok"; standby, starting, disconnected and
// any phase this package does not know answer "standby".
//
// Nothing is logged per request above debug level: balancers poll constantly.
package ping
