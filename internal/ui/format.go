package ui

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/pushgate/pushgate/internal/grouping"
)

// funcs are the template functions; all are pure.
var funcs = template.FuncMap{
	"ago":       ago,
	"until":     until,
	"abstime":   absTime,
	"isotime":   isoTime,
	"duration":  humanDuration,
	"count":     thousands,
	"bytes":     humanBytes,
	"add":       func(a, b int) int { return a + b },
	"since":     func(t, now time.Time) time.Duration { return now.Sub(t) },
	"when":      func(t, now time.Time) timeAt { return timeAt{T: t, Now: now} },
	"keyLabels": keyLabels,
	"join":      strings.Join,
}

// keyLabels orders a grouping key's labels for reading: job first, then
// the others by name.
func keyLabels(k grouping.Key) []grouping.Label {
	ls := k.Labels()
	out := make([]grouping.Label, 0, len(ls))
	for _, l := range ls {
		if l.Name == grouping.JobLabel {
			out = append(out, l)
		}
	}
	for _, l := range ls {
		if l.Name != grouping.JobLabel {
			out = append(out, l)
		}
	}
	return out
}

// timeAt is a time with the page's now, for the "time" template.
type timeAt struct {
	T, Now time.Time
}

// ago is how long before now t was, as people say it: "just now",
// "42 s ago", "3 min ago", "5 h 12 min ago", "3 days ago"; "never" for the
// zero time. The page script keeps it current with the same rules.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in the future"
	}
	return humanDuration(d) + " ago"
}

// until says when a future t comes, relative to now ("in 5 min").
func until(t, now time.Time) string {
	if d := t.Sub(now); d > 0 {
		return "in " + humanDuration(d)
	}
	return "now"
}

// humanDuration rounds d to its largest two units.
func humanDuration(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 5:
		return "a moment"
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d min", s/60)
	case s < 48*3600:
		if m := s % 3600 / 60; m != 0 && s < 10*3600 {
			return fmt.Sprintf("%d h %d min", s/3600, m)
		}
		return fmt.Sprintf("%d h", s/3600)
	default:
		return fmt.Sprintf("%d days", s/86400)
	}
}

// absTime is t in UTC, to the second.
func absTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// isoTime is t for a <time datetime> attribute.
func isoTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// thousands formats n with thin separators: 10,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3+1)
	if neg {
		out = append(out, '-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// humanBytes formats a size in binary units.
func humanBytes(n int64) string {
	if n < 0 {
		return "unknown"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
