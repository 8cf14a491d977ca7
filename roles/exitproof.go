package roles

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ExitProof proves, by the kernel, that a process has exited: a pidfd
// (Linux 5.3) becomes readable when the process it refers to ends, and a
// pidfd cannot come to refer to another process that reuses the pid. A
// closed pipe is no proof: the process may have closed it and live on,
// frozen or busy. The duty guard holds one for its coordinator, its
// parent, and releases the lease for it only with this proof (issue 17).
type ExitProof struct {
	fd  int
	pid int
}

// ParentExitProof opens a pidfd for this process's parent, which must be
// pid: a parent that already exited (the process was re-parented) or is
// another process gives an error, and no proof.
func ParentExitProof(pid int) (*ExitProof, error) {
	if pid <= 1 || os.Getppid() != pid {
		return nil, fmt.Errorf("roles: the coordinator (pid %d) is not this process's parent (%d)", pid, os.Getppid())
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("roles: pidfd_open(%d): %w", pid, err)
	}
	// The pid was our parent's before the pidfd was opened; it still is
	// after, so the pidfd refers to the live parent, not to a reuse.
	if os.Getppid() != pid {
		_ = unix.Close(fd)
		return nil, errors.New("roles: the coordinator exited while its pidfd was opened")
	}
	return &ExitProof{fd: fd, pid: pid}, nil
}

// PID is the process the proof is for.
func (p *ExitProof) PID() int { return p.pid }

// Exited waits up to timeout for the process to have exited: true only
// when the kernel says it has.
func (p *ExitProof) Exited(timeout time.Duration) bool {
	if p == nil {
		return false
	}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		ms := int(left / time.Millisecond)
		if left > 0 && ms == 0 {
			ms = 1
		}
		fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, max(ms, 0))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return false
		case n > 0 && fds[0].Revents&unix.POLLIN != 0:
			return true
		case time.Now().After(deadline):
			return false
		}
	}
}

// Close releases the pidfd.
func (p *ExitProof) Close() error {
	if p == nil {
		return nil
	}
	return unix.Close(p.fd)
}
