package nodetest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Proc is one live process of a node as /proc shows it.
type Proc struct {
	PID, PPID, PGID, SID int
	State                byte
	// Comm is /proc/PID/comm: what `ps -o comm` shows.
	Comm string
	// Args is /proc/PID/cmdline split at NUL bytes: what `ps -o args` shows.
	Args []string
	// Exe is where /proc/PID/exe points, "" when unreadable.
	Exe string
	// Start is the start time in clock ticks since boot: with PID it names
	// the process across pid reuse.
	Start string
	// ByEnv is true when the process carries the node's marker in its
	// environment, false when only its argv names the node's directory.
	ByEnv bool
}

func (p Proc) String() string {
	how := "env"
	if !p.ByEnv {
		how = "argv"
	}
	return fmt.Sprintf("pid %d (ppid %d pgid %d sid %d %c, %s, found by %s) comm %q args %q",
		p.PID, p.PPID, p.PGID, p.SID, p.State, p.Exe, how, p.Comm, strings.Join(p.Args, " "))
}

// Alive reports whether this very process (not a later one with its pid)
// still runs; a zombie does not count.
func (p Proc) Alive() bool {
	now, ok := readProc(p.PID)
	return ok && now.Start == p.Start && now.State != 'Z' && now.State != 'X'
}

// Processes lists every live process of the node, ordered by pid: those
// carrying the node's marker in their environment (hanode, its duty guard,
// the duties and whatever they fork without scrubbing the environment), and
// those whose argv names a file in the node's directory (a duty that
// scrubbed its environment but still writes the heartbeat file). Zombies
// are left out; so are processes of other users (their environ is
// unreadable). After the node's hanode has exited, every process listed is
// one it left behind.
func (n *Node) Processes() []Proc {
	var out []Proc
	for _, pid := range nodePIDs(n.marker, n.dir) {
		p, ok := readProc(pid)
		if !ok || p.State == 'Z' || p.State == 'X' {
			continue
		}
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		p.ByEnv = containsEntry(env, []byte(markerEnv+"="+n.marker+"\x00"))
		out = append(out, p)
	}
	return out
}

// nodePIDs scans /proc for processes whose environment holds the marker or
// whose argv names a path under dir.
func nodePIDs(marker, dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	env := []byte(markerEnv + "=" + marker + "\x00")
	under := []byte(strings.TrimRight(dir, "/") + "/")
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ")); err == nil && containsEntry(data, env) {
			out = append(out, pid)
			continue
		}
		if dir != "" {
			if argv, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Contains(argv, under) {
				out = append(out, pid)
			}
		}
	}
	slices.Sort(out)
	return out
}

// readProc reads one process's stat, comm, cmdline and exe.
func readProc(pid int) (Proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, false
	}
	// "pid (comm) S ppid pgrp session ...": comm may hold anything.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Proc{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return Proc{}, false
	}
	p := Proc{PID: pid, State: f[0][0], Start: f[19]}
	p.PPID, _ = strconv.Atoi(f[1])
	p.PGID, _ = strconv.Atoi(f[2])
	p.SID, _ = strconv.Atoi(f[3])
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		p.Comm = strings.TrimRight(string(comm), "\n")
	}
	if argv, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		p.Args = strings.Split(strings.TrimRight(string(argv), "\x00"), "\x00")
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		p.Exe = strings.TrimSuffix(exe, " (deleted)")
	}
	return p, true
}
