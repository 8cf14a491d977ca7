// Package nodetest runs the real hanode binary for end-to-end tests, fault
// tests and benchmarks.
//
// Build compiles ./cmd/hanode once per test binary. Start writes a real env
// file from a map of keys, starts `hanode run --env-file FILE` in its own
// process group with its HTTP endpoint on a free 127.0.0.1 port, and removes
// everything the node started (its process group and every duty it forked)
// in t.Cleanup, printing the tail of its log when the test failed.
//
// A Checker polls every node's /v2/ping/net/<id>/se/ concurrently and keeps,
// per node, the runs of equal answers stamped with the local time each
// request was sent and its answer arrived. From those it derives two kinds
// of overlap between the "ok" answers of two nodes:
//
//   - definite: both nodes were surely active at one instant. A node is
//     surely active from the arrival of the first "ok" of a run to the
//     sending of the last one (the handler read the state somewhere between
//     sending and arrival). No false positives: Assert fails on these.
//   - possible: the balancer's view, from the arrival of an "ok" to the
//     arrival of the node's next other answer. A poller that asks every P
//     sees such an overlap whenever a handover is faster than P, so these
//     are reported, not failed on (unless CheckerOptions.FailOnPossible).
//
// Nodes started with Options.Heartbeat run a duty that appends
// "<unix ns> <HANODE_NAME> <HANODE_TERM> <HANODE_ROLE> <HANODE_HA_ID>" to
// the node's heartbeat file every 50 ms. A duty runs at least from its first
// line to its last, so two (name, term) spans that overlap prove two duties
// ran at once; Assert fails on that, and on terms that do not grow from one
// duty to the next. The check needs no grace period and has no false
// positives.
//
// Everything talks to 127.0.0.1 only. Waits poll conditions with a ticker
// and a deadline (internal/testwait; WaitStatus and WaitStandby for a
// node's /v2/status); nothing sleeps to synchronize.
package nodetest
