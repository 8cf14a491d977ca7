package roles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// FenceConfig configures FENCE_CMD, run by a new leader before its duty
// starts, to cut the previous leader off from what lies outside its host
// (a storage reservation, a switch port, a power outlet).
type FenceConfig struct {
	Command          string // run via /bin/sh -c; empty = no fencing
	Timeout          time.Duration
	Name, Role, HAID string
	Env              []string  // base environment (os.Environ() in production)
	Output           io.Writer // the command's stdout and stderr (nil = os.Stderr)
	// Jailer keeps every process the command starts together, so that none
	// outlives the fence (nil: its process group only).
	Jailer *Jailer
}

// Previous identifies the leader to fence.
type Previous struct {
	Name, Host, HTTP string
	Term             int64
	// Known is false when nobody knows who led before (the leader record
	// was missing or unreadable, and no member that may have acted was
	// seen): a previous leader may have acted, but Name, Host, HTTP and
	// Term are empty.
	Known bool
	// Candidates are all the members that may have acted, the one above
	// first (nil: just that one, when Known). There are several only when
	// the leader record could not say who led.
	Candidates []Candidate
}

// Candidate is one member that may have acted: its server name, host, HTTP
// address and the last lease term it published (0: none).
type Candidate struct {
	Name, Host, HTTP string
	Term             int64
}

func flag01(k bool) string {
	if k {
		return "1"
	}
	return "0"
}

// Fence runs the fence command for the leadership of term and reports
// whether it succeeded (exit status 0 within the timeout). The command sees
// HANODE_NAME, HANODE_ROLE, HANODE_HA_ID, HANODE_TERM (the new term);
// HANODE_PREV_NAME, HANODE_PREV_HOST, HANODE_PREV_HTTP, HANODE_PREV_TERM
// (the previous leader, or the first candidate); HANODE_PREV_KNOWN ("1", or
// "0" when nothing at all is known and the command must fence whatever may
// have acted, for example every other member of the group); and every
// candidate: HANODE_PREV_COUNT (0 when none is known) and, for i from 1 to
// it, HANODE_PREV_<i>_NAME, _HOST, _HTTP and _TERM, with
// HANODE_PREV_1_* the same as HANODE_PREV_*.
// It runs in its own process group, killed whole on timeout or when ctx ends.
func Fence(ctx context.Context, cfg FenceConfig, term int64, prev Previous) error {
	if cfg.Command == "" {
		return nil
	}
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	out := cfg.Output
	if out == nil {
		out = os.Stderr
	}
	cmd := exec.Command("/bin/sh", "-c", cfg.Command)
	var base []string
	for _, kv := range cfg.Env {
		if !strings.HasPrefix(kv, "HANODE_PREV_") { // none inherited: the list is ours alone
			base = append(base, kv)
		}
	}
	cmd.Env = setEnv(base, fenceEnv(cfg, term, prev)...)
	cmd.Stdout, cmd.Stderr = out, out
	// Whatever the command left running is killed before the fence
	// counts: nothing of it acts after it (its jail, or its group).
	err, _ := runOnce(ctx, cmd, cfg.Jailer)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("roles: FENCE_CMD did not finish within %s", cfg.Timeout)
	default:
		return fmt.Errorf("roles: FENCE_CMD: %w", err)
	}
}

// fenceEnv is what Fence adds to the command's environment.
func fenceEnv(cfg FenceConfig, term int64, prev Previous) []string {
	cands := prev.Candidates
	if len(cands) == 0 && prev.Known {
		cands = []Candidate{{Name: prev.Name, Host: prev.Host, HTTP: prev.HTTP, Term: prev.Term}}
	}
	env := []string{"HANODE_NAME=" + cfg.Name, "HANODE_ROLE=" + cfg.Role, "HANODE_HA_ID=" + cfg.HAID,
		"HANODE_TERM=" + strconv.FormatInt(term, 10),
		"HANODE_PREV_NAME=" + prev.Name, "HANODE_PREV_HOST=" + prev.Host, "HANODE_PREV_HTTP=" + prev.HTTP,
		"HANODE_PREV_TERM=" + strconv.FormatInt(prev.Term, 10),
		"HANODE_PREV_KNOWN=" + flag01(prev.Known || len(cands) > 0),
		"HANODE_PREV_COUNT=" + strconv.Itoa(len(cands))}
	for i, m := range cands {
		p := "HANODE_PREV_" + strconv.Itoa(i+1) + "_"
		env = append(env, p+"NAME="+m.Name, p+"HOST="+m.Host, p+"HTTP="+m.HTTP, p+"TERM="+strconv.FormatInt(m.Term, 10))
	}
	return env
}
