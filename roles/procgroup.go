package roles

// Process groups: waiting for the duty's shell, signalling its whole group,
// and confirming that the group is gone (zombies do not count); and sessions:
// killing every group of a dead duty guard's session.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// proc is one run of the duty's shell. Its waiter reports the exit without
// reaping the shell, so the shell's PID, which is the group ID, stays
// reserved until the owner has signalled the group for the last time.
type proc struct {
	cmd     *exec.Cmd
	pid     int
	term    int64
	started time.Time
	jail    *jail // every process of this run (procgroup jail when nil)
	daemon  bool  // forking mode: the starter exited 0 and its daemon runs in the jail

	exited   chan struct{} // closed when the shell has exited (a zombie, not reaped)
	exitedAt time.Time     // written before exited closes
	reap     chan struct{} // closed by the owner: no more signals to the group
	reapOnce sync.Once
	reaped   chan struct{}    // closed when cmd.Wait has returned
	state    *os.ProcessState // written before reaped closes
}

func (p *proc) wait() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	p.exitedAt = time.Now()
	close(p.exited)
	<-p.reap
	_ = p.cmd.Wait() // the exit is in ProcessState; an ErrWaitDelay does not matter
	p.state = p.cmd.ProcessState
	close(p.reaped)
}

// finish ends what is left of p by deadline: it waits for the shell to exit,
// SIGKILLs every process of its jail (its group, or its cgroup, or every
// descendant), and only once the jail is confirmed empty reaps the shell
// and removes the jail. It reports how the shell ended. On an error nothing
// is reaped (the shell's pid keeps naming its group): the caller keeps p
// and calls finish again later.
func finish(p *proc, deadline time.Time) (exit string, err error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		return "still running", fmt.Errorf("roles: duty %d still running after SIGKILL", p.pid)
	}
	if err := p.jailOf().kill(p.pid, deadline); err != nil { // survivors of the shell, wherever they went
		return "exited; the rest of its jail still runs", err
	}
	p.reapOnce.Do(func() { close(p.reap) })
	select {
	case <-p.reaped:
	case <-t.C:
		return "not reaped", fmt.Errorf("roles: duty %d exited but was not reaped", p.pid)
	}
	disown(p.pid)
	exit = "unknown"
	if p.state != nil {
		exit = p.state.String()
	}
	p.jailOf().release()
	return exit, nil
}

// jailOf is p's jail; a process group when none was made.
func (p *proc) jailOf() *jail {
	if p.jail == nil {
		p.jail = &jail{mode: ContainNone, fd: -1}
	}
	return p.jail
}

// cldExited is si_code for a child that exited (not killed).
const cldExited = 1

// sigchld is siginfo_t as waitid(2) fills it for a child.
type sigchld struct {
	signo, errno, code, _ int32
	pid, uid, status      int32
	_                     [100]byte
}

// peekExit reads how exited child pid ended without reaping it: si_code
// (cldExited, or killed/dumped) and the status or signal.
func peekExit(pid int) (code, status int32, ok bool) {
	var info sigchld
	_, _, e := unix.Syscall6(unix.SYS_WAITID, unix.P_PID, uintptr(pid), uintptr(unsafe.Pointer(&info)),
		unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, 0, 0)
	if e != 0 || info.pid != int32(pid) {
		return 0, 0, false
	}
	return info.code, info.status, true
}

// signalGroup signals process group pgid; a group already gone is no error.
func signalGroup(pgid int, sig syscall.Signal) error {
	err := syscall.Kill(-pgid, sig)
	if err == nil || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("roles: signal group %d with %v: %w", pgid, sig, err)
}

func waitGroupGone(pgid int, deadline time.Time) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if !groupAlive(pgid) {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("roles: duty process group %d still has live processes", pgid)
		}
		<-tick.C
	}
}

// groupAlive reports whether process group pgid has a process that can still
// run. kill(-pgid, 0) also counts zombies, which linger when the process that
// inherits orphans reaps slowly (PID 1 in many containers), so a hit is
// checked against /proc: a group of zombies only is dead.
func groupAlive(pgid int) bool {
	if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		return false
	}
	alive := false
	if !scanLive(func(st procStat) bool {
		alive = st.pgrp == pgid
		return !alive
	}) {
		return true // cannot tell
	}
	return alive
}

// killSession SIGKILLs every process group that has a live process in
// session sid, again and again until the session holds no live process, and
// reports an error if some still live at deadline. The caller keeps sid
// reserved: the session leader must not be reaped before killSession
// returns, so that no unrelated process can own that session id.
func killSession(sid int, deadline time.Time) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		groups := map[int]bool{}
		if !scanLive(func(st procStat) bool {
			if st.session == sid {
				groups[st.pgrp] = true
			}
			return true
		}) {
			return fmt.Errorf("roles: cannot list the processes of session %d", sid)
		}
		if len(groups) == 0 {
			return nil
		}
		var errs []error
		for pgid := range groups {
			if pgid > 1 {
				errs = append(errs, signalGroup(pgid, syscall.SIGKILL))
			}
		}
		if !time.Now().Before(deadline) {
			return errors.Join(append(errs, fmt.Errorf("roles: session %d still has live processes in groups %v", sid, keys(groups)))...)
		}
		<-tick.C
	}
}

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// procStat is what /proc/PID/stat says of one process.
type procStat struct {
	pid     int
	state   byte
	ppid    int
	pgrp    int
	session int
}

// scanLive calls f for every process that can still run (zombies do not
// count, but a zombie leader whose other threads still run does) until f
// returns false. It reports false when /proc cannot be read.
func scanLive(f func(procStat) bool) bool {
	return scanProcs(func(st procStat) bool {
		if st.state == 'Z' || st.state == 'X' {
			tasks, err := os.ReadDir("/proc/" + strconv.Itoa(st.pid) + "/task")
			if err != nil || len(tasks) <= 1 {
				return true
			}
		}
		return f(st)
	})
}

// scanProcs calls f for every process in /proc, zombies included, until f
// returns false. It reports false when /proc cannot be read.
func scanProcs(f func(procStat) bool) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		st, ok := parseStat(b)
		if !ok {
			continue
		}
		st.pid = pid
		if !f(st) {
			return true
		}
	}
	return true
}

// parseStat reads the state, parent, process group and session from
// /proc/PID/stat.
func parseStat(b []byte) (st procStat, ok bool) {
	i := bytes.LastIndexByte(b, ')') // the command name may hold anything
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 4 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, err0 := strconv.Atoi(f[1])
	pgrp, err1 := strconv.Atoi(f[2])
	session, err2 := strconv.Atoi(f[3])
	if err0 != nil || err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], ppid: ppid, pgrp: pgrp, session: session}, true
}
