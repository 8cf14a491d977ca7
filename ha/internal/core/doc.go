// Package core is hanode's election decision core for one member of one HA
// group: a pure state machine. Core.Step takes an event (a ZooKeeper reply
// or watch, a session change, a tick, the duty's and the fence's outcomes)
// and the time on the member's monotonic clock, and returns the actions to
// carry out (requests, duty start, extension and stop, fence, transitions,
// notices). It starts no goroutine, reads no clock and does no I/O:
// TestCoreIsPure keeps it so, and the internal/ path keeps it out of
// library users' reach.
//
// The invariant it keeps, and the argument for each claim rule, are in
// package ha's documentation (ha/doc.go): for any two leaderships X then Y
// of one group, stop(X) ≤ s_X + D/(1−ρ) < o_Y + W/(1+ρ) ≤ start(Y).
//
// Package ha drives a Core over go-zookeeper (election.go); the simulator
// (ha's sim_*_test.go) drives many over a simulated ZooKeeper.
package core
