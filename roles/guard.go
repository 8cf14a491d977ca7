package roles

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// The duty guard keeps the active duty fenced by the lease even when the
// coordinator cannot act. It is a small process of hanode's own
// (`hanode duty-guard`) that owns the duty's process group and holds its own
// copy of the lease deadline:
//
//   - the coordinator tells it the lease left at every renewal ("extend");
//   - when the deadline passes without an extension (the coordinator froze,
//     starved, or its clock stopped with it) the guard stops the duty;
//   - when its stdin closes (the coordinator died, even by SIGKILL to its
//     whole process group: the guard has a group of its own) it stops the
//     duty and exits.
//
// The guard computes its deadline when a message arrives, later than the
// coordinator sent it, so its copy never outlasts the lease.
//
// Protocol, one line each way:
//
//	coordinator -> guard: "extend <ns left>", "start <term>", "stop <reason>"
//	guard -> coordinator: "stopped" or "stopped error <text>" after each stop

// ServeGuard is the guard's main loop: it reads commands from in, runs the
// duty with sup, and answers stops on out. It returns when in closes or ctx
// ends, after stopping the duty.
func ServeGuard(ctx context.Context, in io.Reader, out io.Writer, sup *Supervisor, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()

	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	var deadline time.Time
	stop := func(reason string) error {
		expiry.Stop()
		deadline = time.Time{}
		return sup.Stop(reason)
	}
	for {
		select {
		case <-ctx.Done():
			return stop("guard stopped")
		case err := <-readErr:
			log.Warn("coordinator gone; stopping the duty", zap.Error(err))
			return stop("coordinator gone")
		case <-expiry.C:
			log.Warn("lease expired without an extension from the coordinator; stopping the duty")
			_ = stop("lease expired (guard): the coordinator stopped extending it")
		case line := <-lines:
			verb, arg, _ := strings.Cut(line, " ")
			switch verb {
			case "extend":
				ns, err := strconv.ParseInt(arg, 10, 64)
				if err != nil {
					log.Error("bad guard command", zap.String("line", line))
					continue
				}
				deadline = time.Now().Add(time.Duration(ns))
				expiry.Reset(time.Until(deadline))
			case "start":
				term, err := strconv.ParseInt(arg, 10, 64)
				if err != nil {
					log.Error("bad guard command", zap.String("line", line))
					continue
				}
				if deadline.IsZero() || !time.Now().Before(deadline) {
					log.Warn("not starting the duty: no lease left", zap.Int64("term", term))
					continue
				}
				sup.Start(term)
			case "stop":
				reply := "stopped"
				if err := stop(arg); err != nil {
					reply = "stopped error " + strings.ReplaceAll(err.Error(), "\n", " ")
				}
				if _, err := fmt.Fprintln(out, reply); err != nil {
					return stop("coordinator gone")
				}
			default:
				log.Error("bad guard command", zap.String("line", line))
			}
		}
	}
}

// GuardConfig says how to start the guard process.
type GuardConfig struct {
	// Path and Args run the guard: normally os.Executable() and
	// {"duty-guard", ...flags}.
	Path string
	Args []string
	// StopTimeout bounds a stop: the guard's own StopTimeout plus
	// KillGrace, plus a margin for the round trip.
	StopTimeout time.Duration
	Logger      *zap.Logger
}

// Guard is the coordinator's end of a duty guard. Its methods are safe for
// concurrent use; the elector calls them from one goroutine.
type Guard struct {
	cfg GuardConfig
	log *zap.Logger

	mu      sync.Mutex
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	replies chan string
	exited  chan struct{}
}

// NewGuard returns a guard client; the process starts on first use.
func NewGuard(cfg GuardConfig) *Guard {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Guard{cfg: cfg, log: log}
}

// Ready starts the guard process now, so the first takeover does not pay
// for starting it.
func (g *Guard) Ready() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd != nil {
		return nil
	}
	return g.spawnLocked()
}

// Extend passes the lease left to the guard. It never blocks for long: a
// pipe write to a live guard.
func (g *Guard) Extend(left time.Duration) {
	g.send(fmt.Sprintf("extend %d", left.Nanoseconds()))
}

// Start asks the guard to run the duty for term; the guard refuses when the
// lease it holds has run out.
func (g *Guard) Start(term int64) {
	g.send(fmt.Sprintf("start %d", term))
}

// Stop asks the guard to stop the duty and waits for its answer. If the
// guard does not answer in time it is killed, which kills the duty's shell
// through its parent-death signal.
func (g *Guard) Stop(reason string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil {
		return nil
	}
	if err := g.write("stop " + strings.ReplaceAll(reason, "\n", " ")); err != nil {
		return fmt.Errorf("roles: guard: %w", err)
	}
	select {
	case r := <-g.replies:
		if msg, ok := strings.CutPrefix(r, "stopped error "); ok {
			return fmt.Errorf("roles: guard: %s", msg)
		}
		return nil
	case <-g.exited:
		return errors.New("roles: guard exited before confirming the stop")
	case <-time.After(g.cfg.StopTimeout):
		g.log.Error("guard did not confirm the stop; killing it")
		g.killLocked()
		return fmt.Errorf("roles: guard did not stop the duty within %s", g.cfg.StopTimeout)
	}
}

// Close ends the guard process (it stops any duty first) and waits for it.
func (g *Guard) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil {
		return nil
	}
	_ = g.stdin.Close()
	select {
	case <-g.exited:
	case <-time.After(g.cfg.StopTimeout):
		g.killLocked()
	}
	g.cmd = nil
	return nil
}

func (g *Guard) send(line string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.write(line); err != nil {
		g.log.Error("guard unreachable", zap.String("command", line), zap.Error(err))
	}
}

// write sends one line, starting (or restarting) the guard when needed.
func (g *Guard) write(line string) error {
	if g.cmd != nil {
		select {
		case <-g.exited:
			g.log.Error("duty guard exited; starting a new one")
			g.cmd = nil
		default:
		}
	}
	if g.cmd == nil {
		if err := g.spawnLocked(); err != nil {
			return err
		}
	}
	_, err := io.WriteString(g.stdin, line+"\n")
	return err
}

func (g *Guard) spawnLocked() error {
	cmd := exec.Command(g.cfg.Path, g.cfg.Args...)
	// A process group of its own: killing the coordinator's group leaves the
	// guard alive to stop the duty. Its stdin is the coordinator's lifeline.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{os.Stdout} // fd 3: where the duty's output goes
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start duty guard: %w", err)
	}
	g.cmd, g.stdin = cmd, stdin
	g.replies, g.exited = make(chan string, 4), make(chan struct{})
	replies, exited := g.replies, g.exited
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case replies <- sc.Text():
			default: // nobody waits: a stale reply
			}
		}
		err := cmd.Wait()
		g.log.Info("duty guard exited", zap.Int("pid", cmd.Process.Pid), zap.Error(err))
		close(exited)
	}()
	g.log.Info("duty guard started", zap.Int("pid", cmd.Process.Pid))
	return nil
}

func (g *Guard) killLocked() {
	if g.cmd != nil && g.cmd.Process != nil {
		_ = g.cmd.Process.Kill()
	}
}
