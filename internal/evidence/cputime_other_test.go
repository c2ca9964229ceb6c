//go:build !unix

package evidence

import "time"

// cpuTime is the CPU time this process has used, which this system does
// not tell here.
func cpuTime() (time.Duration, bool) { return 0, false }
