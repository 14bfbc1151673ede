package store

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error that rejects a push because of its
// content. Its text is the reference's, so clients see the same message.
var ErrInvalid = errors.New("pushed metrics are invalid or inconsistent with existing metrics")

// ErrTimestamp rejects pushes with timestamps (it wraps ErrInvalid).
var ErrTimestamp = fmt.Errorf("%w: pushed metrics must not have timestamps", ErrInvalid)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// LimitError refuses a push that would exceed a configured limit. Such a
// push changes nothing, not even push_failure_time_seconds: it was refused
// before it could be judged.
type LimitError struct {
	Kind LimitKind
	// Got is the number the push would reach, Max the limit.
	Got, Max int
	// Detail names what exceeded it (a label name, a metric).
	Detail string
}

// LimitKind names a limit.
type LimitKind int

const (
	// SeriesPerPush limits the series in one push.
	SeriesPerPush LimitKind = iota
	// TotalSeries limits the series in the store.
	TotalSeries
	// TotalGroups limits the groups in the store.
	TotalGroups
	// LabelsPerSeries limits the labels of one series (grouping labels included).
	LabelsPerSeries
	// LabelNameLength limits the bytes of a label name.
	LabelNameLength
	// LabelValueLength limits the bytes of a label value.
	LabelValueLength
	// StoredBytes limits the bytes of a group's stored value (a shared
	// journal's request size).
	StoredBytes
)

func (e *LimitError) Error() string {
	switch e.Kind {
	case SeriesPerPush:
		return fmt.Sprintf("push has %d series, more than the limit of %d per push", e.Got, e.Max)
	case TotalGroups:
		return fmt.Sprintf("the gateway would hold %d groups, more than its limit of %d", e.Got, e.Max)
	case LabelsPerSeries:
		return fmt.Sprintf("series %s has %d labels, more than the limit of %d", e.Detail, e.Got, e.Max)
	case LabelNameLength:
		return fmt.Sprintf("label name %s has %d bytes, more than the limit of %d", e.Detail, e.Got, e.Max)
	case LabelValueLength:
		return fmt.Sprintf("value of label %s has %d bytes, more than the limit of %d", e.Detail, e.Got, e.Max)
	case StoredBytes:
		return fmt.Sprintf("the group would be stored as a request of %d bytes, more than the limit of %d", e.Got, e.Max)
	default:
		return fmt.Sprintf("the gateway would hold %d series, more than its limit of %d", e.Got, e.Max)
	}
}
