// Package grouping holds the grouping key of a pushed group: the job label and
// any further labels named in the push URL. It parses the URL form (including
// the @base64 and U__ name encodings) and formats it back.
package grouping

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

// Base64Suffix marks a label name in the URL path whose value is base64url
// encoded (RFC 4648 §5, padding optional).
const Base64Suffix = "@base64"

// JobLabel is the label every grouping key has.
const JobLabel = "job"

// Label is one name/value pair of a grouping key.
type Label struct {
	Name, Value string
}

// Key identifies a group. It is immutable and safe to share; the zero Key is
// not valid.
type Key struct {
	id     string
	labels []Label // sorted by name
}

// Options control which label names a parser accepts.
type Options struct {
	// UTF8Names accepts any UTF-8 label name, and decodes names given in
	// the U__ value-encoding escaping scheme (--push.enable-utf8-names).
	UTF8Names bool
}

// ErrJobRequired is returned for an empty job name.
var ErrJobRequired = errors.New("job name is required")

// ParsePath parses the part of a push URL path after "/metrics/", that is
// "job/<JOB>{/<NAME>/<VALUE>}" or "job@base64/<JOB>...". The path must already
// be percent-decoded, as the reference router sees it: a decoded "/" separates
// path components.
func ParsePath(p string, opts Options) (Key, error) {
	first, rest, _ := strings.Cut(p, "/")
	var jobBase64 bool
	switch first {
	case JobLabel:
	case JobLabel + Base64Suffix:
		jobBase64 = true
	default:
		return Key{}, fmt.Errorf("path must start with /metrics/job/ or /metrics/job@base64/, got %q", "/metrics/"+p)
	}
	job, labelPath, hasLabels := strings.Cut(rest, "/")
	if hasLabels {
		labelPath = "/" + labelPath
	}
	if jobBase64 {
		decoded, err := decodeBase64(job)
		if err != nil {
			// The reference quotes what it decoded before the error (its
			// job variable is overwritten), so that is what clients see
			// first; the segment as sent follows.
			return Key{}, fmt.Errorf("invalid base64 encoding in job name %q: %w (job@base64 segment %q)", decoded, err, job)
		}
		job = decoded
	}
	labels, err := splitLabels(labelPath, opts)
	if err != nil {
		return Key{}, err
	}
	if job == "" {
		return Key{}, ErrJobRequired
	}
	// The job from the path wins over a "job" label pair, as in the reference.
	labels[JobLabel] = job
	return FromMap(labels)
}

// splitLabels parses "/name/value/name@base64/value..." into a map.
func splitLabels(p string, opts Options) (map[string]string, error) {
	result := map[string]string{}
	if len(p) <= 1 {
		return result, nil
	}
	parts := strings.Split(p[1:], "/")
	if len(parts)%2 != 0 {
		return nil, fmt.Errorf("odd number of components in label string %q", p)
	}
	for i := 0; i < len(parts); i += 2 {
		// Messages quote the name as written in the path (before U__
		// unescaping), as the reference does.
		written, isBase64 := strings.CutSuffix(parts[i], Base64Suffix)
		name, value := written, parts[i+1]
		if opts.UTF8Names {
			name = model.UnescapeName(written, model.ValueEncodingEscaping)
		}
		if !validLabelName(name, opts) {
			if name != written {
				return nil, fmt.Errorf("improper label name %q (unescaped: %q)", written, name)
			}
			return nil, fmt.Errorf("improper label name %q", written)
		}
		if isBase64 {
			decoded, err := decodeBase64(value)
			if err != nil {
				return nil, fmt.Errorf("invalid base64 encoding for label %s=%q: %w", written, value, err)
			}
			value = decoded
		}
		result[name] = value
	}
	return result, nil
}

func validLabelName(name string, opts Options) bool {
	if strings.HasPrefix(name, model.ReservedLabelPrefix) {
		return false
	}
	if opts.UTF8Names {
		return model.UTF8Validation.IsValidLabelName(name)
	}
	return model.LegacyValidation.IsValidLabelName(name)
}

// decodeBase64 decodes base64url with optional padding, as the reference does:
// trailing '=' are ignored, so a lone "=" encodes the empty string.
func decodeBase64(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	return string(b), err
}

// FromMap builds a Key from a label map, which must contain a non-empty job.
// Label values must be valid UTF-8: a group whose key cannot be exposed must
// not exist.
func FromMap(m map[string]string) (Key, error) {
	if m[JobLabel] == "" {
		return Key{}, ErrJobRequired
	}
	labels := make([]Label, 0, len(m))
	for n, v := range m {
		if !utf8.ValidString(v) {
			// The reference's scrape check words it so.
			return Key{}, fmt.Errorf("the grouping key has a label named %q whose value is not utf8: %q", n, v)
		}
		labels = append(labels, Label{Name: n, Value: v})
	}
	sort.Slice(labels, func(i, j int) bool { return labels[i].Name < labels[j].Name })
	return Key{id: makeID(labels), labels: labels}, nil
}

// makeID joins names and values with model.SeparatorByte, which can appear in
// neither, so that the ID is unique per label set (the reference's scheme).
func makeID(labels []Label) string {
	var sb strings.Builder
	for i, l := range labels {
		if i > 0 {
			sb.WriteByte(model.SeparatorByte)
		}
		sb.WriteString(l.Name)
		sb.WriteByte(model.SeparatorByte)
		sb.WriteString(l.Value)
	}
	return sb.String()
}

// ID is the canonical identity of the key, usable as a map key.
func (k Key) ID() string { return k.id }

// Labels returns the labels sorted by name. The slice is shared: callers
// must not modify it.
func (k Key) Labels() []Label { return k.labels }

// Get returns the value of the named label, or "" if absent.
func (k Key) Get(name string) string {
	for _, l := range k.labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// Has reports whether the key has the named label.
func (k Key) Has(name string) bool {
	for _, l := range k.labels {
		if l.Name == name {
			return true
		}
	}
	return false
}

// Map returns the labels as a new map.
func (k Key) Map() map[string]string {
	m := make(map[string]string, len(k.labels))
	for _, l := range k.labels {
		m[l.Name] = l.Value
	}
	return m
}

// String formats the key as a label set: {instance="a", job="b"}.
func (k Key) String() string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, l := range k.labels {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s=%q", l.Name, l.Value)
	}
	sb.WriteByte('}')
	return sb.String()
}

// Path formats the key as the URL path that addresses its group, relative to
// the route prefix: /metrics/job/<job>{/<name>/<value>}, such that ParsePath
// with the same opts gives the key back. Values that a path cannot carry
// verbatim (empty, containing '/') use the @base64 form. With UTF8Names,
// label names outside the legacy character set, and legacy names that look
// escaped (starting with U__), are written in the U__ escaping.
func (k Key) Path(opts Options) string {
	var sb strings.Builder
	sb.WriteString("/metrics")
	writePair(&sb, JobLabel, k.Get(JobLabel), opts)
	for _, l := range k.labels {
		if l.Name != JobLabel {
			writePair(&sb, l.Name, l.Value, opts)
		}
	}
	return sb.String()
}

func writePair(sb *strings.Builder, name, value string, opts Options) {
	sb.WriteByte('/')
	if opts.UTF8Names && (strings.HasPrefix(name, "U__") || !model.LegacyValidation.IsValidLabelName(name)) {
		sb.WriteString(escapeName(name))
	} else {
		sb.WriteString(name)
	}
	if value == "" || strings.ContainsAny(value, "/%?#") {
		sb.WriteString(Base64Suffix)
		sb.WriteByte('/')
		if value == "" {
			sb.WriteByte('=')
			return
		}
		sb.WriteString(base64.RawURLEncoding.EncodeToString([]byte(value)))
		return
	}
	sb.WriteByte('/')
	sb.WriteString(url.PathEscape(value))
}

// escapeName writes name in the U__ value-encoding escaping for any name,
// including legacy-valid ones (model.EscapeName leaves those as they are,
// which would not round-trip a legacy name starting with U__).
func escapeName(name string) string {
	var sb strings.Builder
	sb.WriteString("U__")
	for i, r := range name {
		switch {
		case r == '_':
			sb.WriteString("__")
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == ':', r >= '0' && r <= '9' && i > 0:
			sb.WriteRune(r)
		default:
			fmt.Fprintf(&sb, "_%x_", r)
		}
	}
	return sb.String()
}
