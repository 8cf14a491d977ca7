package ha

import (
	"errors"

	"github.com/hanode/hanode/ha/internal/core"
)

// Refusals: the cluster will not let this node take part. They are final for
// the process (cmd/hanode exits with status 77); details are wrapped around them.
var (
	// ErrNameInUse: another live process holds this server name
	// (SessionConfig.ReserveName).
	ErrNameInUse = errors.New("ha: name in use")
	// ErrGroupMismatch: the HA_ID is recorded with another role, region or
	// session timeout (the lease every member waits out).
	ErrGroupMismatch = core.ErrGroupMismatch
	// ErrAccessDenied: ZooKeeper denied this node's credentials access to
	// its own tree: a wrong secret, or none where the tree is protected
	// (Access).
	ErrAccessDenied = errors.New("ha: ZooKeeper denied access to the hanode tree")
)

// IsRefusal reports whether err is one of the refusals above.
func IsRefusal(err error) bool {
	return errors.Is(err, ErrNameInUse) || errors.Is(err, ErrGroupMismatch) || errors.Is(err, ErrAccessDenied)
}

// Misuses of an Election, reported instead of a panic.
var (
	// ErrRunOnce: Run was called on an Election that already ran or runs.
	ErrRunOnce = errors.New("ha: an Election runs once: Run was called before")
	// ErrAlreadyMember: another Election of the same group runs on the
	// session; a session is one member of a group at a time.
	ErrAlreadyMember = errors.New("ha: the session is already a member of this group")
	// ErrElectionDone: the election has ended (Run returned) before what
	// was waited for happened (Campaign).
	ErrElectionDone = errors.New("ha: election ended")
)

// ErrOutcomeUnknown: a fenced write's connection broke with the write
// outstanding; ZooKeeper may or may not have applied it. Read back what it
// wrote (a version or the term in the data) before writing again.
var ErrOutcomeUnknown = errors.New("ha: the write may or may not have been applied")
