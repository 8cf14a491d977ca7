package core

// Weakening is a deliberate defect of the core, set only by the
// simulator's mutation tests (sim_mutation_test.go): each one breaks one
// part of the argument in ha/doc.go, and the simulator must find a violation
// with it. Production cores have none.
type Weakening uint32

const (
	// WeakWait shortens the takeover wait W to 0.99 W.
	WeakWait Weakening = 1 << iota
	// WeakNoMargin lets the holder act until s + D (no margin M).
	WeakNoMargin
	// WeakRuleCFromListing dates a look's observation by its listing, not
	// by the last reply it rests on (the first hole a review found).
	WeakRuleCFromListing
	// WeakReleaseBeforeStop writes a release before the duty has stopped
	// (the second hole a review found).
	WeakReleaseBeforeStop
	// WeakKeepAcrossEpochs keeps observations across a reconnect.
	WeakKeepAcrossEpochs
	// WeakRuleAWindow brings back rule A's proof by time across epochs,
	// widened: our last write acknowledged less than W ago, in any epoch,
	// even after a release.
	WeakRuleAWindow
	// WeakRuleAAnyVersion lets rule A take a record that names us at any
	// version, not only as our own last write of it left it.
	WeakRuleAAnyVersion
	// WeakEpochAtSend dates replies and watches by the epoch their request
	// was sent in, not by the connection that delivered them (the review's
	// fourth case).
	WeakEpochAtSend
	// WeakReplyEpochOnly dates a reply by the connection that delivered it
	// alone, though it was sent on another (queued across a reconnect).
	WeakReplyEpochOnly
	// WeakIgnoreClockStall takes no notice of a stalled monotonic clock.
	WeakIgnoreClockStall
	// WeakRuleBAnyRelease lets rule B take a release first read in this
	// epoch (one ZooKeeper may have restored from a snapshot).
	WeakRuleBAnyRelease
	// WeakNoRevalidate lets a holder write in a new epoch before a look
	// has shown it still lowest with its node as it left it.
	WeakNoRevalidate
	// WeakNoFailoverClaims lets a member that may not lead (NOFAILOVER,
	// unhealthy) claim like any other.
	WeakNoFailoverClaims
	// WeakHolderIgnoresHealth lets a holder told that its health check
	// fails keep the lease.
	WeakHolderIgnoresHealth
	// WeakFenceTimeOnly makes a fenced write rest on the holder's clock
	// alone: Fence hands out no checks, only the term.
	WeakFenceTimeOnly
	// WeakIgnorePause takes no notice of a paused group: takeovers go on.
	WeakIgnorePause
	// WeakIgnoreSwitchover takes no notice of a switchover request.
	WeakIgnoreSwitchover
)

func (w Weakening) has(x Weakening) bool { return w&x != 0 }
