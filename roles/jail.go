package roles

// Containment: keeping every process a command starts together, so that
// ending the command ends all of them, whatever they fork, re-parent,
// setsid or daemonize. A process group is not enough: any process may leave
// it (GNU timeout does; setsid and every daemon do). The kernel offers two
// things a process cannot leave:
//
//   - a cgroup v2 subtree: a process and all it forks stay in the cgroup it
//     was born in (CLONE_INTO_CGROUP puts the command there before its first
//     instruction), unless it has write access to another cgroup's
//     cgroup.procs; cgroup.kill SIGKILLs every process in it at once, and
//     cgroup.events says when none is left;
//   - a child subreaper (PR_SET_CHILD_SUBREAPER): every orphan among our
//     descendants is re-parented to us instead of to init, so "every
//     descendant of this process" is a set a process cannot leave; it is
//     killed by walking /proc until none is left.
//
// A Jailer picks one at start (ContainAuto: a cgroup when this process can
// make and enter one, else the subreaper) and makes one jail per run.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Containment says how a command's processes are kept together.
type Containment string

// The containments. ContainAuto is a request only: a Jailer resolves it.
const (
	ContainAuto      Containment = "auto"
	ContainCgroup    Containment = "cgroup"    // a cgroup v2 subtree per run, ended by cgroup.kill
	ContainSubreaper Containment = "subreaper" // every descendant of this process, found in /proc
	ContainNone      Containment = "none"      // the command's process group only: escapes are not stopped
)

// ParseContainment reads a DUTY_CONTAINMENT value ("" is auto).
func ParseContainment(s string) (Containment, error) {
	switch c := Containment(strings.ToLower(strings.TrimSpace(s))); c {
	case "":
		return ContainAuto, nil
	case ContainAuto, ContainCgroup, ContainSubreaper, ContainNone:
		return c, nil
	}
	return "", fmt.Errorf("roles: unknown containment %q (want auto, cgroup, subreaper or none)", s)
}

// Jailer makes the jails of one process: one per run of a command.
type Jailer struct {
	mode   Containment
	base   string // ContainCgroup: the cgroup directory the jails are made in
	prefix string // name prefix of this process's jails
	seq    atomic.Int64

	// testKillFails makes that many kills report failure (tests only: a
	// process stuck in the kernel cannot be made on demand).
	testKillFails atomic.Int32
}

// NewJailer resolves want for this process. ContainCgroup makes jails under
// this process's own cgroup v2 (delegated by systemd with Delegate=yes),
// named prefix followed by a number; it fails when no cgroup can be made and
// entered here. ContainAuto falls back to ContainSubreaper, which makes this
// process a child subreaper. Why says, for a fallback, why no cgroup.
func NewJailer(want Containment, prefix string) (j *Jailer, why error, err error) {
	j = &Jailer{mode: want, prefix: prefix}
	switch want {
	case ContainNone:
		return j, nil, nil
	case ContainSubreaper:
		return j, nil, becomeSubreaper()
	case ContainCgroup, ContainAuto:
		base, err := probeCgroup(prefix)
		if err == nil {
			j.mode, j.base = ContainCgroup, base
			return j, nil, nil
		}
		if want == ContainCgroup {
			return nil, nil, fmt.Errorf("roles: DUTY_CONTAINMENT=cgroup, but %w", err)
		}
		j.mode = ContainSubreaper
		return j, err, becomeSubreaper()
	}
	return nil, nil, fmt.Errorf("roles: unknown containment %q", want)
}

// Mode is the containment in force.
func (j *Jailer) Mode() Containment {
	if j == nil {
		return ContainNone
	}
	return j.mode
}

// Base is the cgroup directory jails are made in ("" unless ContainCgroup).
func (j *Jailer) Base() string {
	if j == nil {
		return ""
	}
	return j.base
}

// Sweep ends what earlier processes left behind: the jails named
// "<stem><pid>-..." in this cgroup whose pid no longer runs (a hanode killed
// with its guard, or a restarted node's dead guard). A cgroup still in use
// by a live process of that pid is left alone, and so is every jail of a
// dead hanode whose duty guard still runs: that guard is doing the job
// itself (stopping the duty, ending the other jails, releasing the lease,
// bounded by its release timeout) and exits after; killing it would cost
// the group the release, so the lease would be waited out. A later Sweep
// removes what it leaves. Several hanode processes can share one cgroup
// (tests, or a unit running several), so a start must not end another's
// guard. It reports what it ended.
func (j *Jailer) Sweep(stem string, deadline time.Time) []string {
	if j == nil || j.mode != ContainCgroup {
		return nil
	}
	entries, err := os.ReadDir(j.base)
	if err != nil {
		return nil
	}
	dead := map[int][]string{} // a dead owner's pid: its jails
	var owners []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), stem)
		if !e.IsDir() || !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(num)
		if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if _, seen := dead[pid]; !seen {
			owners = append(owners, pid)
		}
		dead[pid] = append(dead[pid], filepath.Join(j.base, e.Name()))
	}
	var ended []string
	for _, pid := range owners {
		if slices.ContainsFunc(dead[pid], holdsGuard) {
			continue
		}
		for _, dir := range dead[pid] {
			_ = cgroupKill(dir, deadline)
			_ = removeCgroup(dir)
			ended = append(ended, dir)
		}
	}
	return ended
}

// GuardCommand is the hanode subcommand that runs a duty guard; Sweep
// tells a live guard by it.
const GuardCommand = "duty-guard"

// holdsGuard reports whether a process in dir (or below) runs a duty
// guard: GuardCommand among its arguments.
func holdsGuard(dir string) bool {
	for _, pid := range cgroupProcs(dir) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && slices.Contains(strings.Split(string(b), "\x00"), GuardCommand) {
			return true
		}
	}
	return false
}

// EndSiblings ends the jails made by the same process as this one's own
// cgroup: a guard whose coordinator died ends what that coordinator ran
// outside the guard (a FENCE_CMD and all it started), which nothing else
// would stop. This process's cgroup is named "<stem><n>"; its siblings
// "<stem><m>" are ended and removed. It does nothing unless ContainCgroup.
// The error names every jail not confirmed empty by deadline.
func (j *Jailer) EndSiblings(deadline time.Time) ([]string, error) {
	if j == nil || j.mode != ContainCgroup {
		return nil, nil
	}
	own := filepath.Base(j.base)
	stem := strings.TrimRight(own, "0123456789")
	if stem == own || stem == "" {
		return nil, fmt.Errorf("roles: cannot tell the coordinator's jails from %s", j.base)
	}
	parent := filepath.Dir(j.base)
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil, fmt.Errorf("roles: list the coordinator's jails: %w", err)
	}
	var ended []string
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), stem)
		if !e.IsDir() || !ok || e.Name() == own || rest == "" || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if err := cgroupKill(dir, deadline); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", dir, err))
		}
		_ = removeCgroup(dir)
		ended = append(ended, dir)
	}
	return ended, errors.Join(errs...)
}

// jail holds the processes of one run of a command.
type jail struct {
	from *Jailer
	mode Containment
	dir  string // ContainCgroup: the run's cgroup
	fd   int    // ContainCgroup: open on dir until the command started; -1 after
}

// newJail makes the jail of the next run. A nil Jailer makes process-group
// jails (ContainNone).
func (j *Jailer) newJail() (*jail, error) {
	if j == nil || j.mode != ContainCgroup {
		return &jail{from: j, mode: j.Mode(), fd: -1}, nil
	}
	dir := filepath.Join(j.base, j.prefix+strconv.FormatInt(j.seq.Add(1), 10))
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("roles: make cgroup %s: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("roles: open cgroup %s: %w", dir, err)
	}
	return &jail{from: j, mode: ContainCgroup, dir: dir, fd: fd}, nil
}

// start starts cmd in a new jail of j (ContainNone: its process group),
// registered as owned until disown.
func (j *Jailer) start(cmd *exec.Cmd) (*jail, error) {
	jl, err := j.newJail()
	if err != nil {
		return nil, err
	}
	jl.prepare(cmd)
	err = startOwned(cmd)
	jl.started()
	if err != nil {
		jl.release()
		return nil, err
	}
	return jl, nil
}

// prepare makes cmd start inside the jail (a cgroup: from its first
// instruction, so nothing it forks is ever outside).
func (jl *jail) prepare(cmd *exec.Cmd) {
	if jl.mode != ContainCgroup || jl.fd < 0 {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = jl.fd
}

// started closes what only the start needed.
func (jl *jail) started() {
	if jl.fd >= 0 {
		_ = unix.Close(jl.fd)
		jl.fd = -1
	}
}

// alive reports whether a process of the run can still run; leader is the
// command's first process (its group for ContainNone).
func (jl *jail) alive(leader int) bool {
	switch jl.mode {
	case ContainCgroup:
		pop, err := cgroupPopulated(jl.dir)
		return err != nil || pop // cannot tell: alive
	case ContainSubreaper:
		return len(jailed(leader)) > 0 || groupAlive(leader)
	}
	return groupAlive(leader)
}

// signal sends sig to every process of the run.
func (jl *jail) signal(leader int, sig syscall.Signal) error {
	err := signalGroup(leader, sig)
	switch jl.mode {
	case ContainCgroup:
		for _, pid := range cgroupProcs(jl.dir) {
			_ = syscall.Kill(pid, sig)
		}
	case ContainSubreaper:
		for _, pid := range jailed(leader) {
			_ = syscall.Kill(pid, sig)
		}
	}
	return err
}

// kill SIGKILLs every process of the run and waits until none is left, at
// most until deadline.
func (jl *jail) kill(leader int, deadline time.Time) error {
	if jl.from != nil && jl.from.testKillFails.Add(-1) >= 0 {
		return errors.New("roles: test: the jail could not be confirmed empty")
	}
	killErr := signalGroup(leader, syscall.SIGKILL)
	switch jl.mode {
	case ContainCgroup:
		return cgroupKill(jl.dir, deadline)
	case ContainSubreaper:
		return killJailed(leader, deadline)
	}
	if err := waitGroupGone(leader, deadline); err != nil {
		return errors.Join(err, killErr)
	}
	return nil
}

// release removes the jail once it is empty.
func (jl *jail) release() {
	jl.started()
	if jl.mode == ContainCgroup {
		_ = removeCgroup(jl.dir)
	}
}

// describe names the jail for logs.
func (jl *jail) describe() string {
	if jl.mode == ContainCgroup {
		return jl.dir
	}
	return string(jl.mode)
}

// --- cgroup v2 ---

// probeCgroup finds this process's cgroup v2 directory and proves that a
// command can be started in a new child of it and the child removed.
func probeCgroup(prefix string) (string, error) {
	mount, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	own, err := ownCgroup()
	if err != nil {
		return "", err
	}
	base := filepath.Join(mount, own)
	if _, err := os.Stat(filepath.Join(base, "cgroup.kill")); err != nil && own != "/" {
		return "", fmt.Errorf("cgroup %s has no cgroup.kill (Linux 5.14 or later is needed): %w", base, err)
	}
	j := &Jailer{mode: ContainCgroup, base: base, prefix: prefix + "probe-"}
	jl, err := j.newJail()
	if err != nil {
		return "", fmt.Errorf("no cgroup can be made under %s (run under systemd with Delegate=yes, or as root): %w", base, err)
	}
	defer jl.release()
	cmd := exec.Command("/bin/true")
	jl.prepare(cmd)
	err = cmd.Run()
	jl.started()
	if err != nil {
		return "", fmt.Errorf("no process can be started in cgroup %s: %w", jl.dir, err)
	}
	return base, nil
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("cannot read mounts: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "36 35 98:0 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) >= 5 && len(qf) >= 1 && qf[0] == "cgroup2" {
			return pf[4], nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted")
}

// ownCgroup reads this process's cgroup v2 path ("/system.slice/x.service").
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("cannot read /proc/self/cgroup: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("this process is in no cgroup v2")
}

func cgroupPopulated(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // removed: nothing in it
	}
	if err != nil {
		return false, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "populated "); ok {
			return v != "0", nil
		}
	}
	return false, fmt.Errorf("roles: %s/cgroup.events has no populated line", dir)
}

// cgroupProcs lists the processes of dir and of every cgroup below it.
func cgroupProcs(dir string) []int {
	var out []int
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
		return nil
	})
	return out
}

// cgroupKill SIGKILLs every process in dir and below and waits until the
// cgroup is empty, at most until deadline. Without cgroup.kill (before
// Linux 5.14) each process is killed on its own, again until none is left.
func cgroupKill(dir string, deadline time.Time) error {
	useKill := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0) == nil
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		pop, err := cgroupPopulated(dir)
		if err == nil && !pop || errors.Is(err, fs.ErrNotExist) {
			return nil // empty, or removed: a populated cgroup cannot be
		}
		if !useKill {
			for _, pid := range cgroupProcs(dir) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("roles: cgroup %s still has live processes %v", dir, cgroupProcs(dir))
		}
		<-tick.C
	}
}

// removeCgroup removes dir and every cgroup below it, deepest first.
func removeCgroup(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			_ = removeCgroup(filepath.Join(dir, e.Name()))
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("roles: remove cgroup %s: %w", dir, err)
	}
	return nil
}

// --- subreaper ---

var subreaperOnce = sync.OnceValue(func() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("roles: become a child subreaper: %w", err)
	}
	return nil
})

func becomeSubreaper() error { return subreaperOnce() }

// owned are the processes this process started through exec that are not
// the current subreaper jail's: their subtrees are not the jail's to kill,
// and their exits are os/exec's to reap. startOwned registers them.
var owned = struct {
	sync.Mutex
	pids map[int]bool
}{pids: map[int]bool{}}

// startOwned starts cmd and registers it as owned until disown.
func startOwned(cmd *exec.Cmd) error {
	owned.Lock()
	defer owned.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	owned.pids[cmd.Process.Pid] = true
	return nil
}

func disown(pid int) {
	owned.Lock()
	delete(owned.pids, pid)
	owned.Unlock()
}

// jailed lists the live descendants of this process that belong to the
// subreaper jail of leader: all of them but owned processes other than
// leader and their subtrees. It also reaps orphans that died.
func jailed(leader int) []int {
	owned.Lock()
	defer owned.Unlock()
	self := os.Getpid()
	parent := map[int]int{}
	live := map[int]bool{}
	scanProcs(func(st procStat) bool {
		parent[st.pid] = st.ppid
		if st.state == 'Z' || st.state == 'X' {
			if st.ppid == self && !owned.pids[st.pid] {
				var ws unix.WaitStatus
				_, _ = unix.Wait4(st.pid, &ws, unix.WNOHANG, nil) // an orphan re-parented to us
			}
			return true
		}
		live[st.pid] = true
		return true
	})
	var out []int
	for pid := range live {
		for p, hops := pid, 0; p > 1 && hops < 4096; p, hops = parent[p], hops+1 {
			if owned.pids[p] && p != leader {
				break
			}
			if parent[p] == self {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// reapOrphans reaps the exited orphans re-parented to this subreaper.
func reapOrphans() {
	owned.Lock()
	defer owned.Unlock()
	self := os.Getpid()
	scanProcs(func(st procStat) bool {
		if st.ppid == self && (st.state == 'Z' || st.state == 'X') && !owned.pids[st.pid] {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(st.pid, &ws, unix.WNOHANG, nil)
		}
		return true
	})
}

// killJailed SIGKILLs the subreaper jail of leader until none of it is
// left, at most until deadline. Processes forked meanwhile are found on the
// next pass: each pass kills every process that could fork.
func killJailed(leader int, deadline time.Time) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		pids := jailed(leader)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			if pid != leader { // the leader is os/exec's: signalled, never reaped here
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = syscall.Kill(leader, syscall.SIGKILL)
		if !time.Now().Before(deadline) {
			return fmt.Errorf("roles: descendants %v still live", pids)
		}
		<-tick.C
	}
}
