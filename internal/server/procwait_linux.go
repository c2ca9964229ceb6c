package server

import (
	"os"

	"golang.org/x/sys/unix"
)

// awaitExit waits for p to exit without reaping it: until cmd.Wait, its
// pid (its group's id) stays its own, so a group kill cannot reach
// another process that took the number.
func awaitExit(p *os.Process) {
	if p == nil {
		return
	}
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}
