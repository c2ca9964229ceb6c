//go:build !unix

package server

import (
	"os"
	"os/exec"
)

func ownGroup(cmd *exec.Cmd) {}

// killGroup kills p only: this system has no process groups to kill.
func killGroup(p *os.Process) error {
	if p == nil {
		return nil
	}
	return p.Kill()
}
