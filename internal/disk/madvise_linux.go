//go:build linux

package disk

import "syscall"

// dropMapped tells the kernel that this process no longer needs the pages
// of the memory-mapped file it touched (reading everything at restore,
// rewriting values since). They stay in the page cache, so nothing is
// re-read from disk unless memory is short; they just stop counting as this
// process's resident memory, which otherwise grows to the file's size.
// The mapping is bbolt's; the raw system call takes its address as it is.
func dropMapped(data uintptr, size int) error {
	if data == 0 || size <= 0 {
		return nil
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, data, uintptr(size), syscall.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}
