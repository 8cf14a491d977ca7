package ha

import (
	"errors"

	"github.com/hanode/hanode/ha/internal/core"
)

// Refusals: the cluster will not let this node take part. They are final for
// the process (cmd/hanode exits with status 77); details are wrapped around them.
var (
	// ErrNameInUse: another live process holds this server name.
	ErrNameInUse = errors.New("ha: name in use")
	// ErrGroupMismatch: the HA_ID is recorded with another role, region or
	// session timeout (the lease every member waits out).
	ErrGroupMismatch = core.ErrGroupMismatch
)

// IsRefusal reports whether err is one of the refusals above.
func IsRefusal(err error) bool {
	return errors.Is(err, ErrNameInUse) || errors.Is(err, ErrGroupMismatch)
}
