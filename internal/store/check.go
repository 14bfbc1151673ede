package store

import (
	"strings"

	dto "github.com/prometheus/client_model/go"

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
		f, ok := old.Families[name]
		return ok && f.Series > 0 && (replace || p.has(name))
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
		if e := elsewhere(name); e != nil {
			return e.typ, true
		}
		if old != nil && !replace {
			if f, ok := old.Families[name]; ok && f.Series > 0 {
				return f.Type, true
			}
		}
		return 0, false
	}

	for i, f := range p.families {
		if f.Series == 0 {
			// Empty families are never exposed, so they cannot
			// make the exposition inconsistent.
			continue
		}
		if e := elsewhere(f.Name); e != nil && e.typ != f.Type {
			where := "in another group"
			if e.reserved {
				where = "among the gateway's own metrics"
			}
			return invalidf("metric %s is pushed as %s but exists as %s %s",
				f.Name, typeString(f.Type), typeString(e.typ), where)
		}
		if err := checkSuffixes(f, typeAfter); err != nil {
			return err
		}
		for _, h := range p.series[i] {
			if owner, ok := s.series[h]; ok && owner != key.ID() {
				return invalidf("a series of metric %s with the same labels is already pushed in group %s",
					f.Name, s.groups[owner].Key)
			}
		}
	}
	return nil
}

// checkSuffixes rejects a family whose _count, _sum or _bucket series would
// collide with a summary or histogram, or vice versa.
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
			return invalidf("metric %s collides with %s %s", f.Name, typeString(t), base)
		}
	}
	if f.Type == dto.MetricType_SUMMARY || isHistogram(f.Type) {
		suffixes := []string{"_count", "_sum"}
		if isHistogram(f.Type) {
			suffixes = append(suffixes, "_bucket")
		}
		for _, suffix := range suffixes {
			if _, ok := typeAfter(f.Name + suffix); ok {
				return invalidf("%s %s collides with metric %s", typeString(f.Type), f.Name, f.Name+suffix)
			}
		}
	}
	return nil
}

func typeString(t dto.MetricType) string {
	return strings.ToLower(t.String())
}
