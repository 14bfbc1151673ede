package etcdtest

import (
	"os/exec"
	"syscall"
)

// setParentDeath makes the kernel SIGKILL the member if the test process
// dies without running its cleanups (a `go test -timeout` panic, a crash),
// so no orphaned etcd keeps its ports and CPU. The signal follows the OS
// thread that started the child, not the process (golang/go#27505); that
// only bites a thread that exits while locked, which tests here do not do.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
