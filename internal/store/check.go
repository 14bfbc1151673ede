package store

import (
	"fmt"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/pushgate/pushgate/internal/family"
	"github.com/pushgate/pushgate/internal/grouping"
)

// checkLocked decides whether applying p to the group would keep the
// exposition consistent. Its cost is proportional to the push.
func (s *Store) checkLocked(key grouping.Key, old *Group, replace bool, p *prepared) error {
	// removed reports whether the push removes the old group's family.
	removed := func(name string) bool {
		if old == nil {
			return false
		}
		return old.Families.lookup(name).holds() && (replace || p.has(name))
	}
	// elsewhere returns the entry of name if a family of that name will
	// remain outside this group: in another group or among the gateway's own.
	elsewhere := func(name string) *nameEntry {
		e := s.names[name]
		if e == nil {
			return nil
		}
		n := e.groups
		if removed(name) {
			n--
		}
		if n > 0 || e.reserved {
			return e
		}
		return nil
	}
	// typeAfter returns the type name will have after the push, if any.
	typeAfter := func(name string) (dto.MetricType, bool) {
		if f := p.get(name); f != nil && f.Series > 0 {
			return f.Type, true
		}
		// This also covers the group's own families that the push keeps
		// (POST): they are not removed, so they count as elsewhere.
		if e := elsewhere(name); e != nil {
			return e.typ, true
		}
		return 0, false
	}

	for i, f := range p.families {
		if f.Series == 0 {
			// Empty families are never exposed, so they cannot
			// make the exposition inconsistent.
			continue
		}
		if e := s.names[f.Name]; e != nil && e.retyping > 0 {
			// Another group's write changing the type is pending; its
			// outcome decides which type is right.
			return invalidf("metric %s is changing type in another group right now; retry", f.Name)
		}
		if e := elsewhere(f.Name); e != nil && e.typ != f.Type {
			// The reference's words: its scrape check finds a type
			// conflict with its own metrics at the family, and one with
			// another group at a series.
			if e.reserved {
				return invalidf("gathered metric family %s has type %s but should have %s (%s is one of the gateway's own metrics)",
					f.Name, f.Type, e.typ, f.Name)
			}
			return invalidf("%s is not a %s (pushed as %s; another group has it as %s)",
				collected(f.Name, p.seriesLabels(key, i, 0)), e.typ, typeString(f.Type), typeString(e.typ))
		}
		if err := checkSuffixes(f, typeAfter); err != nil {
			return err
		}
		if err := s.checkEscapedLocked(f.Name, p, typeAfter); err != nil {
			return err
		}
		if old != nil && equalHashes(p.series[i], old.Families.lookup(f.Name).hashes) {
			// The same series again, the usual push: the index holds
			// them all for this group, so none can clash. Comparing two
			// arrays costs less than a lookup per series in an index
			// of all series.
			continue
		}
		for j, h := range p.series[i] {
			if owner, ok := s.series[h]; ok && (old == nil || owner != old.num) {
				return invalidf("%s was collected before with the same name and label values (group %s has it)",
					collected(f.Name, p.seriesLabels(key, i, j)), s.describeLocked(owner))
			}
		}
	}
	return nil
}

// checkSuffixes rejects a family whose _count, _sum or _bucket series would
// collide with a summary or histogram, or vice versa. The messages are
// client_golang's, which the reference answers; which of two colliding
// families the reference names first depends on its map order.
func checkSuffixes(f *family.Family, typeAfter func(string) (dto.MetricType, bool)) error {
	isHistogram := func(t dto.MetricType) bool {
		return t == dto.MetricType_HISTOGRAM || t == dto.MetricType_GAUGE_HISTOGRAM
	}
	for _, suffix := range []string{"_count", "_sum", "_bucket"} {
		base, ok := strings.CutSuffix(f.Name, suffix)
		if !ok {
			continue
		}
		t, ok := typeAfter(base)
		if ok && (isHistogram(t) || (t == dto.MetricType_SUMMARY && suffix != "_bucket")) {
			kind := "summary"
			if isHistogram(t) {
				kind = "histogram"
			}
			return invalidf("collected metric named %q collides with previously collected %s named %q", f.Name, kind, base)
		}
	}
	if f.Type == dto.MetricType_SUMMARY || isHistogram(f.Type) {
		suffixes := []string{"_count", "_sum"}
		if isHistogram(f.Type) {
			suffixes = append(suffixes, "_bucket")
		}
		for _, suffix := range suffixes {
			if _, ok := typeAfter(f.Name + suffix); ok {
				kind := "histogram or summary"
				if suffix == "_bucket" {
					kind = "histogram"
				}
				return invalidf("collected %s named %q collides with previously collected metric named %q", kind, f.Name, f.Name+suffix)
			}
		}
	}
	return nil
}

// seriesLabels formats the labels of series j of family i of p for a
// message, or returns "" if they are not at hand.
func (p *prepared) seriesLabels(key grouping.Key, i, j int) string {
	if i < len(p.metrics) && j < len(p.metrics[i]) {
		return formatLabels(p.metrics[i][j].Label)
	}
	if name := p.families[i].Name; name == PushTimeName || name == PushFailureName {
		m := &dto.Metric{}
		sanitizeLabels(m, key)
		return formatLabels(m.Label)
	}
	return ""
}

func typeString(t dto.MetricType) string {
	return strings.ToLower(t.String())
}

// describeLocked names a group by number for messages. The group may not
// be published yet (its write is pending), so only its ID is looked up.
func (s *Store) describeLocked(num uint32) string {
	parts := strings.Split(s.groupIDs[num], string([]byte{model.SeparatorByte}))
	var sb strings.Builder
	sb.WriteByte('{')
	for i := 0; i+1 < len(parts); i += 2 {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s=%q", parts[i], parts[i+1])
	}
	sb.WriteByte('}')
	return sb.String()
}

// checkEscapedLocked rejects, with UTF-8 names, a name whose escaped form
// (underscores, the default for scrapers without UTF-8 support) equals that
// of another name present after the push: such scrapers would see the
// family twice and reject the whole scrape.
func (s *Store) checkEscapedLocked(name string, p *prepared, typeAfter func(string) (dto.MetricType, bool)) error {
	if s.scheme != model.UTF8Validation {
		return nil
	}
	esc := model.EscapeName(name, model.UnderscoreEscaping)
	for other := range s.escaped[esc] {
		if other != name {
			if _, present := typeAfter(other); present {
				return invalidf("metrics %q and %q would both be exposed as %s to scrapers without UTF-8 support", name, other, esc)
			}
		}
	}
	for _, f := range p.families {
		if f.Name != name && f.Series > 0 && model.EscapeName(f.Name, model.UnderscoreEscaping) == esc {
			return invalidf("metrics %q and %q would both be exposed as %s to scrapers without UTF-8 support", name, f.Name, esc)
		}
	}
	return nil
}

// addEscapedLocked and dropEscapedLocked keep s.escaped in step with s.names.
func (s *Store) addEscapedLocked(name string) {
	if s.scheme != model.UTF8Validation {
		return
	}
	esc := model.EscapeName(name, model.UnderscoreEscaping)
	if s.escaped[esc] == nil {
		s.escaped[esc] = map[string]struct{}{}
	}
	s.escaped[esc][name] = struct{}{}
}

func (s *Store) dropEscapedLocked(name string) {
	if s.scheme != model.UTF8Validation {
		return
	}
	esc := model.EscapeName(name, model.UnderscoreEscaping)
	delete(s.escaped[esc], name)
	if len(s.escaped[esc]) == 0 {
		delete(s.escaped, esc)
	}
}
