//go:build !linux

package server

import "os"

// awaitExit returns at once where waitid cannot leave an exited process
// unreaped: the group is killed before git is reaped, which the closed
// end of its output says is (about to be) gone.
func awaitExit(p *os.Process) {}
