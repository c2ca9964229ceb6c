//go:build !unix

package gitx

import "os/exec"

// ownGroup leaves cmd's cancellation as it is (git alone is killed):
// this system has no process groups; cancelWait still bounds the wait
// for the pipes git's children hold.
func ownGroup(cmd *exec.Cmd) {}
