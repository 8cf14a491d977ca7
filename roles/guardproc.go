package roles

// The guard process as the coordinator's Guard runs it: starting it in a
// session of its own, talking to it, and burying it with every process of
// its session.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// guardProc is one run of the guard process.
type guardProc struct {
	*proc                 // the process, reaped only once its session is gone
	stdin   *os.File      // commands
	stdout  *os.File      // replies
	lines   <-chan string // replies read from stdout; closed at EOF, nil after
	gone    chan struct{} // closed when the owner buried the process
	spawned time.Time

	// What it has been told and has answered; owned by the Guard's run.
	until   int64  // lease deadline last sent; 0: none (a stop makes the guard forget it)
	ticket  string // release ticket last sent (base64); "": none (a stop makes the guard forget it)
	term    int64  // term of the last start sent; 0: none since the last stop
	started bool   // "started <term>" came for term
	pgid    int    // the duty's latest process group
}

// spawn starts a guard process; it becomes g.proc.
func (g *Guard) spawn() error {
	inR, inW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("roles: start duty guard: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = inR.Close()
		_ = inW.Close()
		return fmt.Errorf("roles: start duty guard: %w", err)
	}
	cmd := exec.Command(g.cfg.Path, g.cfg.Args...)
	if g.cfg.Argv0 != "" {
		cmd.Args[0] = g.cfg.Argv0
	}
	// A session of its own: killing the coordinator's process group leaves
	// the guard alive to stop the duty; a terminal's hangup does not reach
	// it; and everything it starts can be found by its session id. Its stdin
	// is the coordinator's lifeline.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	cmd.ExtraFiles = []*os.File{os.Stdout} // fd 3: where the duty's output goes
	// The guard's jail holds it and all it ever starts (the duty's jails are
	// made inside it), so a dead or frozen guard is ended whole.
	jl, err := g.cfg.Jailer.start(cmd)
	_ = inR.Close()
	_ = outW.Close()
	if err != nil {
		_ = inW.Close()
		_ = outR.Close()
		return fmt.Errorf("roles: start duty guard: %w", err)
	}
	lines := make(chan string, 16)
	p := &guardProc{
		proc: &proc{
			cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), jail: jl,
			exited: make(chan struct{}), reap: make(chan struct{}), reaped: make(chan struct{}),
		},
		stdin: inW, stdout: outR, lines: lines, gone: make(chan struct{}),
		spawned: time.Now(),
	}
	go p.wait()
	go read(outR, lines, p.gone)
	g.proc = p
	g.log.Info("duty guard started", zap.Int("guard_pid", p.pid), zap.String("containment", string(jl.mode)), zap.String("jail", jl.describe()))
	return nil
}

// tell writes one command to the guard, waiting at most guardWriteTimeout.
func (g *Guard) tell(p *guardProc, line string) error {
	return g.tellBy(p, line, time.Now().Add(guardWriteTimeout))
}

// tellBy writes one command to the guard, waiting at most until deadline.
func (g *Guard) tellBy(p *guardProc, line string, deadline time.Time) error {
	_ = p.stdin.SetWriteDeadline(deadline)
	_, err := p.stdin.WriteString(line + "\n")
	if err != nil {
		verb, _, _ := strings.Cut(line, " ")
		g.log.Error("duty guard unreachable; killing it and its session",
			zap.Int("guard_pid", p.pid), zap.String("command", verb), zap.Error(err))
	}
	return err
}

// drain handles what a dead guard said before it died (a "started" that
// raced its death), until EOF or deadline.
func (g *Guard) drain(p *guardProc, deadline time.Time) {
	select {
	case <-p.exited:
	default:
		return // not dead: its pipe may never end
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for p.lines != nil {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.lines = nil
				continue
			}
			if !strings.HasPrefix(line, "stopped") {
				g.handle(p, line)
			}
		case <-t.C:
			return
		}
	}
}

// bury ends guard process p for good: it SIGKILLs the guard if it still
// runs (at once, with its whole jail: a cgroup ends every process in it in
// one write), then every process group of its session and every process of
// its jail until none is left, and only then lets the guard be reaped
// (until then its pid, which is the session id, cannot be reused). The
// error reports processes that could not be confirmed gone within
// KillGrace.
func (g *Guard) bury(p *guardProc, why string) error {
	if g.proc == p {
		g.proc = nil
		g.disarmConfirm()
	}
	_ = p.stdin.Close()
	deadline := time.Now().Add(KillGrace)
	select {
	case <-p.exited:
	default:
		if p.jailOf().mode == ContainCgroup {
			_ = os.WriteFile(p.jail.dir+"/cgroup.kill", []byte("1"), 0) // the guard and its duty, at once
		}
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-p.exited:
		case <-t.C:
		}
		t.Stop()
	}
	g.drain(p, deadline)
	close(p.gone)
	err := errors.Join(killSession(p.pid, deadline), p.jailOf().kill(p.pid, deadline))
	close(p.reap)
	t := time.NewTimer(max(time.Until(deadline), 50*time.Millisecond))
	exit := "not reaped"
	select {
	case <-p.reaped:
		exit = p.state.String()
		disown(p.pid)
		if err == nil {
			p.jail.release()
		}
	case <-t.C:
	}
	t.Stop()
	_ = p.stdout.Close()
	fields := []zap.Field{zap.Int("guard_pid", p.pid), zap.String("reason", why), zap.String("exit", exit)}
	if err != nil {
		g.log.Error("duty guard gone; its session still has live processes", append(fields, zap.Error(err))...)
		return err
	}
	g.log.Info("duty guard gone, with every process of its session", fields...)
	return nil
}

// read forwards the guard's replies until EOF or until it is buried, then
// closes lines.
func read(r *os.File, lines chan<- string, gone <-chan struct{}) {
	defer close(lines)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		select {
		case lines <- sc.Text():
		case <-gone:
			return
		}
	}
}
