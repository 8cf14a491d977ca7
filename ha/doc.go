// Package ha elects one leader per HA group over ZooKeeper and tells the
// rest of hanode, at every moment, whether this node may act as leader.
//
// # Using it
//
// A Session (OpenSession) is one process's ZooKeeper session; it can carry
// elections of many groups. An Election (NewElection) is the session's
// membership of one group, and Run is that membership's life: start it in a
// goroutine, and cancel its context to stop the duty, release the lease and
// leave. Run is the only code that changes the election's state; everything
// else reads what it published or hands it a request:
//
//   - Callbacks run the duty: StartDuty when this node becomes active
//     (with the term, a fencing token), StopDuty when that ends,
//     LeaseExtended for a guard in another process, LeaderChanged, Fence.
//   - Campaign waits until this node is active, Resign hands over to the
//     next member, Observe and Leader tell who leads; State says whether
//     this node may act right now, evaluated against the clock.
//
// Coming from etcd's client/v3/concurrency:
//
//	etcd                                  hanode (package ha)
//	concurrency.NewSession(cli, ...)      OpenSession(SessionConfig{...})
//	concurrency.NewElection(s, prefix)    NewElection(sess, ElectionConfig{Group: ...}), then go el.Run(ctx)
//	(*Election).Campaign(ctx, val)        (*Election).Campaign(ctx): waits for Run to lead; no value
//	  ctx cancelled: deletes the key        ctx cancelled: stops waiting; Run's ctx ends the candidacy
//	(*Election).Resign(ctx)               (*Election).Resign(ctx): stop the duty, release, rejoin at the back
//	(*Election).Observe(ctx)              (*Election).Observe(ctx) <-chan Leader (coalesces, like etcd's)
//	(*Election).Leader(ctx)               (*Election).Leader() Leader (never blocks; Name "" when none)
//	(*Election).Proclaim(ctx, val)        none: a member publishes its MemberInfo once
//	(*Session).Done(), Ctx()              (*Session).Done(); the lease, not Done, ends leading
//	ErrElectionNotLeader                  ErrNotLeader (Fenced)
//
// Coming from client-go's tools/leaderelection:
//
//	client-go                             hanode (package ha)
//	NewLeaderElector(cfg); Run(ctx)       NewElection(sess, cfg); Run(ctx) error, once (ErrRunOnce)
//	LeaseDuration                         SessionConfig.Timeout (the lease is the session timeout)
//	RenewDeadline                         Timeout − ElectionConfig.Margin, from the last acknowledged extension
//	OnStartedLeading(ctx), own goroutine  Callbacks.StartDuty(ctx, term): on Run's goroutine, must not block
//	OnStoppedLeading(), even unstarted    Callbacks.StopDuty(reason) error: only after StartDuty; returns
//	                                        once the duty stopped; an error means a stop not confirmed
//	OnNewLeader(identity)                 Callbacks.LeaderChanged(Leader): on Run's goroutine, must not block
//	IsLeader(), GetLeader()               State().Active(), Leader()
//	ReleaseOnCancel                       always: a graceful stop releases once StopDuty returned nil
//	(no fencing)                          the term, Callbacks.Fence, Fenced
//
// Several Elections share one Session, one per group: a session is one
// member of a group (Run refuses a second with ErrAlreadyMember), so two
// members of one group need two sessions, as two processes have. hanode run
// also reserves its server name (SessionConfig.ReserveName); a library user
// who only wants an election leaves it out. The Elections of one Session
// send their writes together (batch.go; SessionStats.Batches counts them):
// at 1,000 groups on a session ZooKeeper logs a few transactions a second
// instead of one per extension.
//
// # Layout
//
// Under the root (ZK_ROOT, after any chroot of the connect string):
//
//	names/<NAME>                  ephemeral: which process holds a server name
//	groups/<HA_ID>                persistent: the group's role, region and lease
//	groups/<HA_ID>/members/_c_<guid>-m-<seq>
//	                              ephemeral sequential: one per member; the
//	                              holder's lease extensions are writes of it
//	groups/<HA_ID>/leader         persistent: the lease record (term, holder,
//	                              state: fencing, active or released)
//	groups/<HA_ID>/jobs/<name>    persistent: a scheduled job's latest period
//	                              (term, by, state), written by a fenced
//	                              compare-and-set before the run (jobs.go)
//	groups/<HA_ID>/state/<key>    persistent: a value the leader published
//	                              (term, by, value), by a fenced write (kv.go)
//	cycle                         persistent: the cluster-wide polling cycle
//	                              (n, started, term, group, by), advanced by
//	                              the primary group's leader by a fenced
//	                              compare-and-set; every node watches it
//	                              (cycle.go)
//
// Members are ordered by sequence number. A standby watches only its
// predecessor, so a departure wakes one node. Anything under members/ that
// is not an ephemeral node with a member's name and data is ignored (and
// shown in status); hanode never trusts what it did not write.
//
// # The invariant
//
// Never two actives in a group. For any two leaderships X then Y of a group
// (Y's claim succeeded after X's), with every clock's rate within ρ of real
// time (DriftAllowance, 1%):
//
//	stop(X)  ≤  s_X + D/(1−ρ)  <  o_Y + W/(1+ρ)  ≤  start(Y)
//
// in real time, where s_X is the send time of X's last acknowledged write of
// its lease, D the lease duration (ZK_SESSION_TIMEOUT, the same for the
// whole group), o_Y the time Y made the observation its claim rests on, and
// W = D(1+ρ)/(1−ρ) (core.TakeoverWait). The middle inequality holds because
// s_X < o_Y: Y's observation is of a state X's write had already reached
// (or a state in which X could no longer write), and o_Y is the arrival of
// the reply that carries that evidence, never an earlier reply of the same
// look. When X released, start(Y) follows X's versioned release, which X
// writes only with the proof that its duty stopped (release takes the
// dutyStopped token that only a stopped duty yields): stop(X) < start(Y).
// "Stopped" means confirmed: every process of the duty gone, whatever it
// forked (roles' jails). A stop its runner could not confirm
// (EvDutyStopped.Unconfirmed) yields no release: X only leaves, and Y waits
// out X's lease as after a crash.
//
// The simulator checks each side on its own, not only "two actives": every
// duty stops before s_X + D on its own node's clock, every active node is
// inside s_X + D/(1−ρ) of real time, and every duty starts after
// s_X + D/(1−ρ) of every other leadership that did not release
// (sim_adversary_test.go).
//
// The left inequality is the holder's side. X is active only while
//
//	now < s + D − M        (the lease; M = LEASE_MARGIN)
//
// on its own monotonic clock, checked on every read of State and by a
// timer, and its duty is stopped within M, also by a duty guard in another
// process that holds the same deadline: conf requires ACTIVE_STOP_TIMEOUT +
// 300 ms (the wait for a guard that does not confirm the stop; one that
// does not acknowledge it at once is taken for frozen) + 100 ms (the kill
// of its whole jail) + M/8 (stalls too short to notice) ≤ M. So X acts
// only before s + D on its clock, which is at most D/(1−ρ) of real time.
//
// # Extensions, claims and releases
//
// The holder extends its lease only by writing its own member node with
// the version it last wrote, every (D − M)/3, one write of its node at a
// time. The write succeeds only if nobody deleted or wrote that node since,
// and the node's name is unique forever (a random guid for every
// membership), so once it is deleted no write by X can ever succeed again.
// The same multi checks the lease record at the version X last wrote: a
// failed check tells X at once that another client wrote the record, which
// X then rewrites (it holds: no claim can have happened while its node
// stayed as it left it).
//
// A claim is one ZooKeeper multi that writes the claimant's own node at its
// known version (so the claimant is still a member in this incarnation of
// the tree), writes the lease record at the version read (so nobody claimed
// since, and terms grow), and, to take over from a silent holder, deletes
// the holder's node at the version last seen. Exactly one of four rules
// allows it (ha/internal/core/rules.go); each name below is the one code,
// logs, status and the simulator's coverage use:
//
//	rule A (own lease lapsed): the record names us at the version our own last write of it left,
//	   and our node is as our last write left it (version, and data after a
//	   reconnect), that write sent and answered on the current connection:
//	   nobody claimed since in this history; our duty has stopped. There is
//	   no proof across connections (no "acknowledged less than D ago"): a
//	   rule-B claim needs no wait after a release, and a write queued across
//	   a reconnect can land after a rollback that erased a claim.
//	rule B (leader released): the record says its holder released, we saw that holder below us in
//	   this epoch, and the release is at a later version than our first
//	   read of the record in this epoch (written in this epoch's history: a
//	   release ZooKeeper restored from a snapshot may be one a claim already
//	   rested on, a claim the rollback erased while its claimant acts). A
//	   release is a multi that checks (or deletes) the holder's node at its
//	   last written version, written after its duty stopped: no claim
//	   happened before it, none after (B's write of the record checks its
//	   version).
//	rule C (no member below): we are the lowest member, and W has passed since o: the last reply
//	   of the first look in this epoch that showed it (a node in its
//	   listing is known gone only from its read, which comes later; its
//	   holder may extend in between), or our last read of a lowest predecessor
//	   that then vanished with no change in between. Every earlier holder's
//	   node was gone (or unchanged) at o, so its last extension was sent
//	   before o, and it can never extend again.
//	rule D (silent leader): we are second, and the lowest member's node stayed at the version we
//	   read at o for W (W + D when neither its node nor the record says it
//	   holds: it may be waiting to claim itself; only liveness rests on the
//	   extra D). Our claim deletes it at that version: if it extended
//	   meanwhile the claim fails; if not, it never can.
//
// Elections of several groups on one Session send these multis together,
// as one multi (batch.go): each group's ops unchanged inside it, all or
// nothing, a refused batch sent again without the group whose op failed (it
// gets ZooKeeper's answer as if alone), an unknown outcome never sent
// again. Batching only delays a send; the holder counts its lease from when
// it asked for the extension, so a later send can only shorten the lease it
// counts on (the left inequality), and every other write rests on its own
// versions, not on when it is sent.
//
// # Release by the guard
//
// A release written by the holder's duty guard (guardrelease.go,
// core/guard.go) is one more case of rule B. The holder hands its guard a
// ticket with every acknowledged extension: the release multi as of its
// last writes, which deletes its node at the version its last extension
// left and writes the record, released, at the version its last write of
// it left. The guard writes it only when the holder's process has exited,
// proven by the kernel (a pidfd: not a closed pipe, not silence), and the
// duty and every other jail of that process are confirmed stopped (cgroup
// containment; with none, the guard never releases). So the release
// follows stop(X), and X can never act again: no duty, no process. The
// versions make it exact: an extension still on its way when X died, landing
// before the release, changes X's node and the release fails; landing after,
// it finds the node gone and fails itself. A claim by another member changes
// the record's version, and the release fails. A stale ticket only costs the
// fast path: the group waits out the lease (rule D). A frozen or partitioned
// holder is never released for: it has not exited. The versions cannot
// tell a history ZooKeeper rolled back (a snapshot from before another
// member's claim brings them back), so the guard sends the release only
// before the holder's lease ends on its clock — before any other member may
// claim at all — and on one connection: a rollback later cuts that
// connection, and go-zookeeper cannot carry the request to another. Its fenced writes on
// their way fail the same way (their checks name the node and the record at
// the versions the release changes). The simulator models the guard as an
// actor that can die, freeze for two leases or be cut off at any step, and
// catches a guard that takes silence for death or releases before the stop
// (sim_guard_test.go).
//
// A node vanishing, a tree recreated, an empty server: none of these proves
// anything by itself. A crashed holder whose guard could not release for it
// (the machine died, or the guard with it) is replaced W after its last
// extension (rule D), without waiting for ZooKeeper to expire its session,
// so a crash takeover takes W − (time since the last extension), below the
// session timeout on average. A graceful one takes two writes and a read:
// the release, the next member's read of the record (told by its watch that
// the lowest left), and its claim.
//
// Nodes under members/ that are not hanode's are ignored when they cannot
// belong to a member (persistent nodes, other names). An ephemeral node
// with a member's name keeps its place whatever its data (a live member may
// own it, its data overwritten), and is deleted, at the version seen, by
// its successor (or by the lowest member with readable data) once it has
// not changed for W + D: a live member rewrites its damaged node at once (it
// watches its own node), so by then it is foreign or dead, and silent for W
// it cannot be acting (rule D's argument). The member behind the lowest
// readable one sweeps them too, a lease later, because a foreign client's
// node can carry member data and then never sweeps; rule D then pushes that
// node out like any silent lowest member. Member data with a term no hanode
// issues (MaxTerm or beyond) is not readable member data: two foreign nodes
// at the head of the line, both readable, would otherwise leave every
// member behind them waiting for as long as their owner's session lives.
//
// A standby watches its own node, so that it learns at once of another
// client's write or delete. Its own claim writes that node too, and
// ZooKeeper tells the watch before it answers the claim: a change told
// while the claim is out is settled by the claim's reply. The claim wrote
// our node at the version the watch's read found, and landed, answered on
// that connection: then nothing wrote the node between that read and the
// claim, and the change the watch tells (it fires once) was the claim's.
// Anything else (the claim refused or lost, another epoch, the watch's
// version unknown) is looked at, reading our node, as before. The new holder
// learns of a later foreign write from its next extension, which expects
// the version its claim left.
//
// # Observations
//
// Observations (versions seen, absences seen, members seen below us) belong
// to one connection epoch: every reconnect, to the same session or not,
// drops them. ZooKeeper restarted from an older snapshot always cuts every
// connection, so nothing seen before a rollback is used after it. A reply
// or a watch counts only in the epoch of the connection that delivered it,
// and a reply only when its request was sent on that same connection: the
// Session numbers connections by dial and stamps each reply (0 when a
// reconnect raced it), and the core compares. A request queued across a
// reconnect may be applied after a rollback that erased what others did
// meanwhile, and a watch set again on reconnect reports a deletion without
// the changes before it: neither proves anything, they only ask for a look.
// The holder's own proofs (A, releases) count only writes sent and
// acknowledged on the current connection. A holder in a new epoch writes
// nothing (no extension, activation or repair) until a look of that epoch
// shows it the lowest member with its node as it left it, version and
// data: after a rollback another member may be below it, and another
// client's write can bring its node back to the version it expects. The
// cost: after ZooKeeper was away for longer than the lease, the group leads
// again W after it is back. Replies may reach the core in any order (each
// request posts its own): a read raced by a write of ours is never taken
// for another client's write.
//
// # What is assumed
//
//   - Clock rates: every monotonic clock runs within ρ = 1% of real time
//     (DriftAllowance), and, for terms, wall clocks differ by less than the
//     time between two claims ("Terms").
//   - Host pauses: see "Clocks and host pauses"; a pause is detected only
//     once the wall clock is corrected.
//   - Guard timeliness: the duty guard, another process, stops the duty
//     within M of the deadline it holds, even when the coordinator is
//     frozen or partitioned (ACTIVE_STOP_TIMEOUT, then SIGKILL, inside M).
//     A frozen guard is not modelled by the simulator; the coordinator
//     kills a guard that does not answer (roles).
//   - Duty effects end with its processes: nothing the duty started keeps
//     acting once its processes are gone; every process it forks, daemons
//     included, stays in its jail (a cgroup, or a subreaper's descendants)
//     and ends with it (roles).
//   - Balancers: a load balancer polling the ping endpoints every P sees a
//     leader's "ok" up to P after the leader stopped: P must be well under
//     M, or the balancer must also fence (or check the term).
//   - Fenced writes: as stated in "Fenced writes".
//   - No forged records: nobody writes a leader record naming a member that
//     did not write it at that version, copies a holder's node name into
//     the record, or recreates a member node under its exact name with the
//     data it last wrote; digest ACLs keep other clients out. Everything
//     else other clients do (deleting or overwriting any node, valid records
//     with other terms, copied member data) is in the fault model.
//
// # Who leads: candidacy
//
// The rules above say when a member may claim; which member should lead is
// candidacy (core/policy.go), and none of it touches the rules. A member
// that may not lead (NoFailover, or unhealthy: SetHealth) never claims. A
// member that should lead before another gets there by the others stepping
// out of its way: a member with a better one behind it in the line
// (PolicyPriority: a lower Priority; or any member that may lead, when it
// may not) deletes its own member node and joins again at the back; an
// unhealthy member does the same and stays out until healthy; an unhealthy
// holder, or (Preempt) one that has seen a better member for PreemptDelay,
// hands over as Resign does: stop, release, rejoin. A switchover
// (Election.Switchover, core/switchover.go) is the same moves for a target
// an operator named in the group record: the members ahead of it step
// behind it and the holder resigns; a request for a target that is gone
// lapses. Deleting one's own node
// and a release after the duty stopped are moves every member may make at
// any moment under the rules; so for candidacy too
//
//	stop(X)  ≤  s_X + D/(1−ρ)  <  o_Y + W/(1+ρ)  ≤  start(Y)
//
// holds as argued, and a preemption never overlaps (the release comes after
// the stop). The steps back end: the best member never steps back. The
// policy is recorded in the group record; a member with another is refused
// (ErrGroupMismatch).
//
// # Pause
//
// A paused group (the group record's "paused", Election.Pause) withholds
// takeovers: rules B, C and D claim nothing while a member's look read the
// group paused, and each such claim checks the group record at the version
// its look read unpaused, so a pause applied while a claim is on its way
// makes that claim fail. Rule A (the holder's own lapsed lease) is no
// takeover and goes on. Withholding claims is always safe; the resume lets
// the rules run again as before (core/pause.go).
//
// # Fenced writes
//
// What a leader writes beyond the election (the cycle, job periods, state)
// goes through Fenced: one multi whose first ops check our member node at
// the version our last acknowledged extension left and the lease record at
// the version our last write of it left, sent only on the connection those
// versions were read on. Every claim by another member changes the record,
// and rule D deletes our node: so a write of term t never lands after a
// claim of a later term,
//
//	zxid(write of term t)  <  zxid(claim of term t' > t)
//
// and a reader can tell each value's term. A leader whose lease ended but
// that nobody has replaced yet may still land a write: it is ordered before
// the next claim, which is what readers rely on. Not covered: a write that
// go-zookeeper carries to a later connection of the same session (queued
// across a reconnect, or frozen between Session.doIn's test and the send)
// and lands in a ZooKeeper restored to an older state in which another
// client has brought both versions back to what we expect: a forgery of
// our own member node, which digest ACLs rule out ("What is assumed").
//
// # Terms
//
// Each claim takes a term above every term known (the record's, the terms
// members remember and publish when they join, the holder's own) and at
// least the wall clock in milliseconds. The record's version check makes
// terms strictly increase while the record lives; when ZooKeeper lost
// everything and only new members remain, the wall clock does, assuming the
// members' clocks differ by less than the time between two claims (at least
// W after a loss) and fewer than one claim a millisecond. A record whose
// term cannot grow (MaxTerm) is refused with a message naming it.
//
// # Fencing
//
// When FENCE_CMD is set and a previous leader may have acted (it did not
// release, or the record is missing), a new leader claims with state
// "fencing", naming that leader, fences it, then marks the record active
// with a versioned write before it acts: a leader that dies while fencing
// does not hide whom the next must fence. With the record missing or
// unreadable, the claimant names what it read of the members instead
// (fenceCandidates): the silent holder a rule D claim deletes, or every
// member seen below it (rule C; remembered across reconnects, the latest
// 64, since naming one too many only fences one more node); the record
// keeps that list while fencing.
// Nobody is named only when nothing is known. Downstream systems should
// also reject writes carrying a term lower than one they have seen.
//
// # Structure
//
// ha/internal/core is the decision core, a pure state machine (no
// goroutines, no I/O, no clock; its own test checks its imports): events
// in, actions out. Its rules, lease arithmetic and znode codecs are there;
// the internal/ path keeps them out of library users' reach. Election (election.go; its
// etcd-shaped face in campaign.go) runs one core on a Session (session.go),
// which owns the ZooKeeper client, replaces it when needed, reserves and
// defends the server name if asked to, and serves many elections on one
// connection. zkio.go carries an Op to go-zookeeper; cluster.go reads a
// cluster for observers and judges it with the core's decoders. The
// simulator (sim_test.go) runs cores against a simulated ZooKeeper with
// seeded faults and checks the invariant after every step.
//
// # Clocks and host pauses
//
// A host paused by its hypervisor (live migration, snapshot, overload) or
// suspended may resume with its monotonic clock not having counted the
// pause: the holder and its duty guard, which share that clock, would act
// past s + D in real time while another member takes over. Each process
// therefore compares, between consecutive readings, how far the wall clock
// (CLOCK_REALTIME) and CLOCK_BOOTTIME advanced with how far the monotonic
// clock did (internal/clockwatch). When either ran ahead by more than a
// tolerance (M/8, at least 5 ms, plus 1% of the interval: above the wall
// clock's slewing and the skew between readings, small enough for the
// margin to absorb), the monotonic clock stalled (EvClockStall): a holder
// steps down at once, and every proof that bounds elapsed time from above is
// dropped (the lease; the send times of requests still out, which are given
// up as lost). Proofs that bound it from
// below (the waits of rules C and D, the sweeps) only get longer in real
// time and stand. A wall clock stepped forward is indistinguishable from a
// stall and counts as one (a needless step-down); one stepped back is none.
//
// The election checks at every step, before each fenced write, and every
// min(M/4, 100 ms) between events; State compares its own reading with the
// election's last one, so it never reports active across an unnoticed
// stall. The guard checks every 50 ms (tolerance 20 ms), kills the duty at
// once (no ACTIVE_STOP_TIMEOUT: the lease may be over already) and answers
// "expired". The simulator pauses hosts (coordinator, guard and clock) and
// checks every active node against its bound in real time. What remains
// assumed:
//
//   - The wall clock is corrected after the resume (the hypervisor's clock
//     source, a guest agent setting the time, an NTP step). Where the
//     monotonic clock stops, the wall and boot clocks stop with it until
//     then: the pause is detected at the correction, and the holder acts in
//     between as if no time had passed. A host whose clocks all resume where
//     they stopped and stay there, or are stepped back together, is not
//     detected. (A hypervisor that advances the monotonic clock by the pause
//     needs nothing: the lease ends on time.)
//   - A stall shorter than the tolerance goes unnoticed and eats into the
//     margin: conf refuses ACTIVE_STOP_TIMEOUT + 400 ms (the coordinator's
//     wait for a guard that does not confirm the stop, and the kill) +
//     M/8 > M, and its default always fits.
//   - Between the correction and the first check the duty process, resumed
//     too, may act: at most the guard's check period (50 ms) plus the time
//     SIGKILL takes. Fencing, and downstream systems refusing lower terms,
//     cover that window.
package ha
