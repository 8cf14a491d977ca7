// Package hatest runs a real hanode HA group inside your Go tests, so that
// you can test your own duty through leader changes: a crash, a freeze, a
// graceful switchover.
//
// StartZooKeeper starts a real ZooKeeper server in a Docker container
// (testcontainers-go); NewGroup starts N members of one HA group on it, in
// the test's process: each member is hanode's own election (ha.OpenSession
// and ha.NewElection, the code `hanode run` runs) with a ZooKeeper session
// of its own, reaching ZooKeeper through a TCP proxy of its own, so that a
// fault on one member's path leaves the others alone. Your duty runs only
// while its member leads; Duty takes a Go function, Command a shell command
// (run as hanode runs ACTIVE_CMD).
//
//	g := hatest.NewGroup(t, hatest.Config{Nodes: 3, Duty: myDuty})
//	first := g.WaitActive()
//	g.Kill(first)
//	second := g.WaitActive()
//
// # What each fault is
//
// The members are goroutines of your test, not processes, so a fault is
// made from what the rest of the group and ZooKeeper can observe:
//
//   - Kill(name) is a crash: the member's path to ZooKeeper is reset (its
//     client cannot even say goodbye, so its session and member node stay
//     until ZooKeeper expires them), its duty is cancelled at once (as
//     hanode's duty guard does when its coordinator dies) and its election
//     is abandoned without a release. The next member takes over once it
//     has waited out the dead leader's lease: about the session timeout
//     (2 s by default) after the last extension it saw.
//   - Freeze(name) is a hang as the others see it: the member's path to
//     ZooKeeper stalls (connections stay open, no byte moves). The member's
//     own goroutines keep running, so it stops its duty when its lease
//     ends, as hanode's duty guard stops the duty of a frozen coordinator;
//     the others take over after the lease. Thaw(name) heals the path; the
//     member finds its session expired and rejoins as a standby. What an
//     in-process member cannot show is a process that resumes from a pause
//     with stale state: hanode's fault suite (faults/) does that with the
//     real binary and SIGSTOP.
//   - Stop(name) is SIGTERM: the member stops its duty, writes its release
//     and leaves, and the next member takes over at once.
//   - Start(name) starts a stopped or killed member again; it rejoins as a
//     standby (at the back of the line).
//   - Switchover() is a graceful handover of the leader (Election.Resign).
//     (Election.Resign: the old leader keeps its session and rejoins behind.)
//
// # Checks made for you
//
// While the group runs, the test fails (t.Errorf) if two members' duties
// ever run at the same time, if Leader sees two active members, or if a
// duty does not return within the lease margin after its context ended (a
// real hanode would kill it, and a duty that outlives its leadership is
// the one thing an HA group must never have).
//
// # The ZooKeeper image
//
// Images are never pulled. The default image is $HANODE_ZK_IMAGE, else
// hanode-zookeeper:3.8-2, a Debian bookworm rootfs with Debian's zookeeper
// package that hanode's `make zk-image` (scripts/zk-image.sh) builds without
// any registry. On a machine with a registry, pull an official image and
// name it: `docker pull zookeeper:3.9`, then
// ZooKeeperOptions{Image: "zookeeper:3.9"} (or HANODE_ZK_IMAGE=zookeeper:3.9).
// Without a Docker engine the tests that need one are skipped with one
// message, except in CI (CI=true) or with HANODE_REQUIRE_DOCKER=1, where
// they fail.
package hatest
