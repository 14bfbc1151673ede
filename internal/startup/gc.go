package startup

import "runtime/debug"

// GCPercent is the GC target after the restore, unless GOGC is set. The heap
// is mostly pointer-free byte slices (the stored families), which the
// collector does not scan, so collecting more often is cheap, and a heap that
// may grow to twice the live data (Go's default) would double the resident
// memory.
const GCPercent = 25

// TuneGC sets the GC target to GCPercent unless gogc, the value of the GOGC
// environment variable, is set: an operator's choice wins. Call it after
// Restore: the restore allocates the whole store at once, and only afterwards
// is the tighter target worth its extra collections. It returns the previous
// target and whether it set one.
func TuneGC(gogc string) (previous int, set bool) {
	if gogc != "" {
		return 0, false
	}
	return debug.SetGCPercent(GCPercent), true
}
