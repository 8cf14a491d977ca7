// Package metrics exports a node's state to Prometheus: GET /metrics on the
// node's HTTP port (ping mounts Handler). It reads the election the way the
// status page does, through ha.StateReader at every gather, and counts what
// happens between scrapes from the transitions feed (Election.Subscribe),
// the session's request hook (ha.SessionConfig.ObserveRequest), the duty's
// start and exit callbacks (roles) and the fence. It imports ha and never
// the other way round.
//
// Every hanode_ metric carries the constant labels ha_id, name and role
// (Config); no label holds free text: transition reasons are reduced to a
// small class (ReasonClass), ZooKeeper states and request types to fixed
// lists.
//
//	hanode_build_info{version}                 1
//	hanode_active                              1 when this node answers "ok" (active, its duty serving), else 0
//	hanode_term                                the group's term as this node knows it (0: none seen)
//	hanode_lease_seconds_left                  this node's lease left; 0 when it holds none
//	hanode_members                             members of the group in this node's last listing
//	hanode_transitions_total{from,to,reason}   phase changes; reason is ReasonClass of the core's reason
//	hanode_takeover_seconds{rule}              see below
//	hanode_zk_session_state{state}             1 for the client's state, 0 for the others
//	hanode_zk_client_replacements_total        clients replaced after a session timeout without a session
//	hanode_zk_request_seconds{op}              election requests to ZooKeeper, by type
//	hanode_duty_starts_total                   duty starts (every run: first starts and restarts)
//	hanode_duty_exits_total                    duty ends on its own (not asked to stop)
//	hanode_duty_restarts_total                 starts after an own exit in the same term
//	hanode_fence_runs_total{result}            FENCE_CMD runs: ok, failed, canceled
//	hanode_fence_seconds                       how long each FENCE_CMD run took
//
// hanode_takeover_seconds is observed once per activation of this node by
// rule B, C or D, from the moment this node observed what its claim rests
// on to the moment it became active, both on its own clock
// (ha.Transition.Evidence): for rule D the read of the silent leader's
// node at the version it kept from then on, that is its last extension as
// this node saw it (a watch notification and a read after the leader's
// write); for rule C the same read of a lowest member that then vanished,
// or else the first look that showed no member below (a fresh group's
// first election counts from there); for rule B the read of the release.
// So it includes the safe wait W, the claim, the fence and the activation
// write, and it is short of the time since the leader's own write by that
// notification and read (milliseconds). Rule A, a node taking back its own
// lapsed lease, is not a takeover and is not observed.
//
// The Go runtime's and the process's standard metrics (go_*, process_*)
// are served too, without the constant labels.
//
// Handler gathers at most once a second for each kind of scrape and serves
// every scrape of that kind in between from that snapshot (snapshot.go), so
// many scrapers cost a node no more than one; a scrape shows the node as of
// at most a second before.
package metrics
