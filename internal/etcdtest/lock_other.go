//go:build !unix

package etcdtest

// lockFile does not lock where flock is missing: parallel builds then only
// waste time, since each renames a complete binary into place.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
