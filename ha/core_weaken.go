package ha

// weakening is a deliberate defect of the core, set only by the
// simulator's mutation tests (sim_mutation_test.go): each one breaks one
// part of the argument in doc.go, and the simulator must find a violation
// with it. Production cores have none.
type weakening uint16

const (
	// weakWait shortens the takeover wait W to 0.99 W.
	weakWait weakening = 1 << iota
	// weakNoMargin lets the holder act until s + D (no margin M).
	weakNoMargin
	// weakRuleCFromListing dates a look's observation by its listing, not
	// by the last reply it rests on (the first hole of issue 14).
	weakRuleCFromListing
	// weakReleaseBeforeStop writes a release before the duty has stopped
	// (the second hole of issue 14).
	weakReleaseBeforeStop
	// weakKeepAcrossEpochs keeps observations across a reconnect.
	weakKeepAcrossEpochs
	// weakRuleAWindow brings back rule A's proof by time across epochs,
	// widened: our last write acknowledged less than W ago, in any epoch,
	// even after a release.
	weakRuleAWindow
	// weakRuleAAnyVersion lets rule A take a record that names us at any
	// version, not only as our own last write of it left it.
	weakRuleAAnyVersion
	// weakEpochAtSend dates replies and watches by the epoch their request
	// was sent in, not by the connection that delivered them (the review's
	// fourth case).
	weakEpochAtSend
	// weakReplyEpochOnly dates a reply by the connection that delivered it
	// alone, though it was sent on another (queued across a reconnect).
	weakReplyEpochOnly
	// weakIgnoreClockStall takes no notice of a stalled monotonic clock.
	weakIgnoreClockStall
	// weakRuleBAnyRelease lets rule B take a release first read in this
	// epoch (one ZooKeeper may have restored from a snapshot).
	weakRuleBAnyRelease
	// weakNoRevalidate lets a holder write in a new epoch before a look
	// has shown it still lowest with its node as it left it.
	weakNoRevalidate
)

func (w weakening) has(x weakening) bool { return w&x != 0 }
