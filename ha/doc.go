// Package ha elects one leader per HA group over ZooKeeper and tells the
// rest of hanode, at every moment, whether this node may act as leader.
//
// # Layout
//
// Under the root (ZK_ROOT, after any chroot of the connect string):
//
//	names/<NAME>                  ephemeral: who holds a server name
//	groups/<HA_ID>                persistent: the group's role and region
//	groups/<HA_ID>/members/_c_<guid>-m-<seq>
//	                              ephemeral sequential: one per live member, JSON MemberInfo
//	groups/<HA_ID>/leader         persistent: the current term and who holds it
//
// The member with the lowest sequence number leads. Each standby watches
// only its predecessor, so a departure wakes one node. Every znode is
// created by the helpers in znodes.go, the one place ACLs apply.
//
// # The safety contract
//
// Leadership is a lease against this process's monotonic clock, not a flag
// flipped by events. A node is active only while
//
//	lastAck + sessionTimeout - margin > now
//
// where lastAck is the local send time of the most recent request that the
// server acknowledged and that proved our member node still exists and is
// owned by our current session (ephemeralOwner). The server cannot expire
// the session, and so no other member can see our node vanish, before
// lastAck + sessionTimeout: the request reached the server after we sent it.
// The margin covers stopping the duty (ACTIVE_STOP_TIMEOUT < margin). The
// session timeout used is the smaller of the requested and the negotiated
// one, so a server that lowers it cannot stretch the lease.
//
// The lease is evaluated on every read of State, so a process resumed from
// a pause answers from the clock, not from a stale flag; and the owner
// goroutine arms a timer at the deadline that stops the duty whether or not
// any ZooKeeper event arrived. Only StateHasSession counts as connected.
// A changed session id means the old session expired: its view, member and
// term are discarded and the node rejoins as a new candidate, at the back.
//
// The lease relies on the server not forgetting a session before
// lastAck + sessionTimeout. ZooKeeper losing its data breaks that, so a
// member that becomes lowest without ever having seen a member below its own
// (the first member of an empty group, a group restarted whole, a tree the
// server lost) holds leadership until its own session is one session timeout
// (plus one renewal period) old: every earlier leader's last acknowledgement
// was sent before that session existed. A member that takes over by seeing
// its predecessor's node removed needs no wait: the server that removed it
// knew the predecessor's session. A client that has had no session for a
// session timeout is replaced, since a server that lost its data refuses,
// for good, a client that has seen a newer zxid.
//
// A new leader takes a term (fencing token) that is larger than any term
// recorded in the group or seen by any member, commits it with a versioned
// write before it acts, and passes it to its duty. ZooKeeper orders the
// writes, so terms only grow within a group; after a data loss they keep
// growing through the terms members remember (MemberInfo.SeenTerm).
//
// When a previous leader may have acted, a new leader first calls
// Callbacks.Fence and stays standby until it succeeds. The leader record
// remembers the last leader that may have acted, so a leader that dies while
// fencing does not hide whom to fence.
//
// Beyond Callbacks.Fence, downstream systems should reject writes carrying a
// term lower than one they have seen. This package knows nothing of HTTP or
// of what the duty does; Callbacks.OnLeaseExtended lets a duty guard in
// another process enforce the lease even when this process cannot.
package ha
