//go:build unix

package evidence

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used, and
// whether the system tells it.
func cpuTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
