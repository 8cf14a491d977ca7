package roles

import (
	"context"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runOnce runs cmd, a one-shot command (FENCE_CMD, NOTIFY_CMD, CYCLE_CMD), to its end
// in a jail of j (nil: its process group only), and returns what cmd.Wait
// said. When ctx ends first the whole jail is SIGKILLed. Either way,
// whatever the command left running (a background job, a daemon) is killed
// before runOnce returns: nothing of a one-shot command acts after it.
// killErr reports a jail that could not be confirmed empty within
// KillGrace; its processes may still run.
//
// The caller sets cmd's environment and output; runOnce sets SysProcAttr
// (its own process group; SIGKILL when the starting thread ends, so a
// caller that must not orphan it locks its OS thread) and WaitDelay.
func runOnce(ctx context.Context, cmd *exec.Cmd, j *Jailer) (waitErr, killErr error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second // a leftover holding the output pipe open
	jl, err := j.start(cmd)
	if err != nil {
		return err, nil
	}
	pid := cmd.Process.Pid
	done := make(chan struct{})
	go func() { // the jail's kill needs the shell unreaped (its pid names its group)
		defer close(done)
		var info unix.Siginfo
		for unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	killErr = jl.kill(pid, time.Now().Add(KillGrace))
	waitErr = cmd.Wait()
	disown(pid)
	if killErr == nil {
		jl.release()
	}
	return waitErr, killErr
}
