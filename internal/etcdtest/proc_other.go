//go:build !linux

package etcdtest

import "os/exec"

// setParentDeath has no equivalent here; cleanups stop the members.
func setParentDeath(*exec.Cmd) {}
