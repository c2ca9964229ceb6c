//go:build unix

package gitx

import (
	"os"
	"os/exec"
	"syscall"
)

// ownGroup starts cmd in a process group of its own and makes its
// cancellation kill the whole group: git's children (git-remote-http,
// index-pack, pack-objects) go with it.
//
// The group's id is git's pid. It cannot name another process's group
// while any process of git's group lives (the kernel does not reuse a
// pid that is still a group's id); once all are gone, the kill finds no
// group and the cancellation is os.ErrProcessDone, as for a process
// that finished.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process) }
}

// killGroup kills every process of p's group.
func killGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		if err == syscall.ESRCH {
			return os.ErrProcessDone
		}
		return err
	}
	return nil
}
