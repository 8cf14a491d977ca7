package ha

import "time"

// leaseLeft returns how long a lease acknowledged by a request sent at
// lastAck still has, given the session timeout and the safety margin. A zero
// lastAck (never acknowledged) or a result <= 0 means no lease.
//
// now and lastAck must both come from time.Now in this process so their
// difference uses the monotonic clock.
func leaseLeft(lastAck time.Time, sessionTimeout, margin time.Duration, now time.Time) time.Duration {
	if lastAck.IsZero() {
		return 0
	}
	left := lastAck.Add(sessionTimeout - margin).Sub(now)
	if left < 0 {
		return 0
	}
	return left
}

// renewInterval is how often a member proves its node still exists. Four
// renewals fit in one lease, so a single slow or lost request never costs
// leadership, and a connection that comes back within the lease keeps it.
func renewInterval(sessionTimeout, margin time.Duration) time.Duration {
	iv := (sessionTimeout - margin) / 4
	if iv < 50*time.Millisecond {
		iv = 50 * time.Millisecond
	}
	return iv
}

// effectiveTimeout is the session timeout the lease must assume: the smaller
// of what we asked for and what the server granted (0: not known yet).
func effectiveTimeout(requested, negotiated time.Duration) time.Duration {
	if negotiated > 0 && negotiated < requested {
		return negotiated
	}
	return requested
}
