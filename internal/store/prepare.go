package store

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/pushgate/pushgate/internal/family"
	"github.com/pushgate/pushgate/internal/grouping"
)

// Names of the families the gateway adds to every group.
const (
	PushTimeName    = "push_time_seconds"
	PushFailureName = "push_failure_time_seconds"
	pushTimeHelp    = "Last Unix time when changing this group in the Pushgateway succeeded."
	pushFailureHelp = "Last Unix time when changing this group in the Pushgateway failed."
	instanceLabel   = "instance"
	quantileLabel   = "quantile"
	bucketLabel     = "le"
)

// prepared is a push that passed all checks that do not depend on the rest
// of the store: sanitized, validated and encoded.
type prepared struct {
	families []*family.Family
	// series holds one hash per metric of each family, in family order.
	series [][]uint64
	// metrics holds the sanitized metrics of the pushed families, in
	// family order, for messages. Families added after them (the group's
	// timestamps) and families loaded from storage have none.
	metrics [][]*dto.Metric
	// byName maps a family name to its index, once the push is complete.
	byName map[string]int
	// labels holds the metrics' grown label slices.
	labels []*dto.LabelPair
}

// prepare validates and encodes the pushed families. It modifies fams (the
// caller's freshly decoded push) in place. It needs no lock. The metrics'
// label slices that need growing are cut from labels (nil: allocated);
// the prepared push's labels are the slice to give back once fams are no
// longer used.
func prepare(key grouping.Key, fams map[string]*dto.MetricFamily, scheme model.ValidationScheme, lim limits, now time.Time, labels []*dto.LabelPair) (*prepared, error) {
	// Like the reference, timestamps are checked first, over the whole push.
	series, pairs := 0, 0
	for _, mf := range fams {
		series += len(mf.Metric)
		for _, m := range mf.Metric {
			if m.TimestampMs != nil {
				return nil, ErrTimestamp
			}
			pairs += len(m.Label)
		}
	}
	names := make([]string, 0, len(fams))
	for name := range fams {
		// The gateway's own timestamp families override pushed ones of
		// that name (reference README, "About timestamps").
		if name != PushTimeName && name != PushFailureName {
			names = append(names, name)
		}
	}
	sort.Strings(names)

	p := &prepared{
		families: make([]*family.Family, 0, len(names)),
		series:   make([][]uint64, 0, len(names)),
		metrics:  make([][]*dto.Metric, 0, len(names)),
	}
	// The series hashes of all families in one array, and room to sort
	// one family's: a sorted copy finds a series pushed twice with less
	// work and memory than a map of them all (a tenth of a push's
	// allocations).
	all := make([]uint64, series)
	sorted := make([]uint64, 0, series)
	kp := newKeyPairs(key)
	// At most every grouping label and instance are added to every metric.
	kp.free = slices.Grow(labels[:0], pairs+series*(len(kp.pairs)+1))
	kp.free = kp.free[:cap(kp.free)]
	p.labels = kp.free
	for _, name := range names {
		mf := fams[name]
		if mf.GetName() != name {
			// Protobuf pushes are keyed by their name field; keep them consistent.
			mf.Name = proto.String(name)
		}
		if err := checkFamily(mf, scheme); err != nil {
			return nil, err
		}
		hashes := all[:len(mf.Metric):len(mf.Metric)]
		all = all[len(mf.Metric):]
		var prev *dto.Metric
		for i, m := range mf.Metric {
			kp.sanitize(m)
			if err := checkLabelLimits(name, m, lim); err != nil {
				return nil, err
			}
			// prev passed the checks: see checkLabels.
			if err := checkLabels(name, mf.GetType(), m, prev, scheme); err != nil {
				return nil, err
			}
			hashes[i] = seriesHash(name, m.Label)
			prev = m
		}
		// The hash covers the name: a series can only repeat within its family.
		sorted = append(sorted[:0], hashes...)
		slices.Sort(sorted)
		for k := 1; k < len(sorted); k++ {
			if sorted[k] == sorted[k-1] {
				return nil, duplicateSeries(name, mf.Metric, hashes)
			}
		}
		f, err := family.New(mf, now)
		if err != nil {
			return nil, err
		}
		p.families = append(p.families, f)
		p.series = append(p.series, hashes)
		p.metrics = append(p.metrics, mf.Metric)
	}
	return p, nil
}

// duplicateSeries is the error for a family whose metrics have repeated
// hashes: it names the first metric whose series came before.
func duplicateSeries(name string, metrics []*dto.Metric, hashes []uint64) error {
	seen := make(map[uint64]bool, len(hashes))
	for i, h := range hashes {
		if seen[h] {
			return invalidf("%s was collected before with the same name and label values (the push contains it twice)",
				collected(name, formatLabels(metrics[i].Label)))
		}
		seen[h] = true
	}
	return nil
}

// checkFamily checks the name and that each metric carries the value its
// family's type says (a protobuf push can mix them).
func checkFamily(mf *dto.MetricFamily, scheme model.ValidationScheme) error {
	name := mf.GetName()
	if !scheme.IsValidMetricName(name) {
		return invalidf("invalid metric name %q", name)
	}
	typ := mf.GetType()
	if _, known := dto.MetricType_name[int32(typ)]; !known {
		return invalidf("metric %s has unknown type %d", name, typ)
	}
	for _, m := range mf.Metric {
		var ok bool
		switch typ {
		case dto.MetricType_COUNTER:
			ok = m.Counter != nil
		case dto.MetricType_GAUGE:
			ok = m.Gauge != nil
		case dto.MetricType_SUMMARY:
			ok = m.Summary != nil
		case dto.MetricType_UNTYPED:
			ok = m.Untyped != nil
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			ok = m.Histogram != nil
		}
		if !ok {
			return invalidf("%s is not a %s (it has no %s value)", collected(name, formatLabels(m.Label)), typ, family.TypeName(typ))
		}
		if h := m.Histogram; h != nil && negativeCounts(h) {
			// Scrapers refuse a negative bucket population, and with it
			// the whole scrape.
			return invalidf("histogram %s%s has a negative count", name, formatLabels(m.Label))
		}
	}
	return nil
}

// negativeCounts reports whether any float count of h is negative (integer
// counts cannot be).
func negativeCounts(h *dto.Histogram) bool {
	if h.GetSampleCountFloat() < 0 || h.GetZeroCountFloat() < 0 {
		return true
	}
	for _, b := range h.GetBucket() {
		if b.GetCumulativeCountFloat() < 0 {
			return true
		}
	}
	for _, c := range append(h.GetPositiveCount(), h.GetNegativeCount()...) {
		if c < 0 {
			return true
		}
	}
	return false
}

// checkLabelLimits applies the configured limits on labels to a sanitized
// metric.
func checkLabelLimits(name string, m *dto.Metric, lim limits) error {
	if lim.labels > 0 && len(m.Label) > lim.labels {
		return &LimitError{Kind: LabelsPerSeries, Got: len(m.Label), Max: lim.labels, Detail: clip(name)}
	}
	for _, lp := range m.Label {
		if n := len(lp.GetName()); lim.nameLen > 0 && n > lim.nameLen {
			return &LimitError{Kind: LabelNameLength, Got: n, Max: lim.nameLen, Detail: clip(lp.GetName())}
		}
		if n := len(lp.GetValue()); lim.valueLen > 0 && n > lim.valueLen {
			return &LimitError{Kind: LabelValueLength, Got: n, Max: lim.valueLen, Detail: clip(lp.GetName())}
		}
	}
	return nil
}

// clip quotes a name for a one-line message, shortened if long.
func clip(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q…", s[:64])
	}
	return fmt.Sprintf("%q", s)
}

// checkLabels applies client_golang's per-metric rules to a sanitized
// metric; before is the metric checked before it in its family (nil for
// the first), whose label pairs need no second check.
func checkLabels(name string, typ dto.MetricType, m, before *dto.Metric, scheme model.ValidationScheme) error {
	prev := ""
	for i, lp := range m.Label {
		ln := lp.GetName()
		if i > 0 && ln == prev {
			return invalidf("%s has two or more labels with the same name: %s", collected(name, formatLabels(m.Label)), ln)
		}
		// A decoded push's metrics share their label names and repeated
		// values (textparse interns them): one that the previous metric,
		// which passed, has at this position is valid. Checking every one
		// was 2 % of a push's CPU.
		p := labelAt(before, i)
		if (p == nil || p.Name != lp.Name || lp.Name == nil) && (!scheme.IsValidLabelName(ln) || strings.HasPrefix(ln, model.ReservedLabelPrefix)) {
			return invalidf("%s has a label with an invalid name: %s", collected(name, formatLabels(m.Label)), ln)
		}
		if typ == dto.MetricType_SUMMARY && ln == quantileLabel {
			return invalidf("%s must not have an explicit %q label", collected(name, formatLabels(m.Label)), quantileLabel)
		}
		if (typ == dto.MetricType_HISTOGRAM || typ == dto.MetricType_GAUGE_HISTOGRAM) && ln == bucketLabel {
			// The reference accepts this; scrapers would refuse the
			// exposition. Worded like the quantile case.
			return invalidf("%s must not have an explicit %q label", collected(name, formatLabels(m.Label)), bucketLabel)
		}
		if (p == nil || p.Value != lp.Value || lp.Value == nil) && !utf8.ValidString(lp.GetValue()) {
			return invalidf("%s has a label named %q whose value is not utf8: %q", collected(name, formatLabels(m.Label)), ln, lp.GetValue())
		}
		prev = ln
	}
	return nil
}

// labelAt is the label pair at position i of m, nil if none.
func labelAt(m *dto.Metric, i int) *dto.LabelPair {
	if m == nil || i >= len(m.Label) {
		return nil
	}
	return m.Label[i]
}

// sanitizeLabels sets the grouping labels on m (their values win over pushed
// ones), adds instance="" if m has no instance label, and sorts the labels.
// An empty instance label keeps Prometheus from attaching its own (reference
// README, "About the job and instance labels").
func sanitizeLabels(m *dto.Metric, key grouping.Key) {
	newKeyPairs(key).sanitize(m)
}

// keyPairs holds a group's grouping labels as label pairs, made once per
// push and shared by all its metrics (which are only read from then on),
// instead of three new objects per grouping label and metric: those were
// 60% of a push's allocations. It is for one goroutine.
type keyPairs struct {
	pairs    []*dto.LabelPair // in the key's order
	instance *dto.LabelPair   // instance="", for metrics without one
	// keyedInstance: the key has an instance label, which every metric
	// gets.
	keyedInstance bool
	// free is cut into the metrics' grown label slices, so that a push
	// allocates them in one block (sized by prepare) rather than one per
	// metric.
	free []*dto.LabelPair
}

func newKeyPairs(key grouping.Key) *keyPairs {
	labels := key.Labels()
	// The pairs and their strings in one array each, not three objects
	// per label: this runs twice per push (the metrics' labels and the
	// timestamp families').
	structs := make([]dto.LabelPair, len(labels)+1)
	strs := make([]string, 0, 2*len(labels)+2)
	pair := func(i int, name, value string) *dto.LabelPair {
		strs = append(strs, name, value)
		lp := &structs[i]
		lp.Name, lp.Value = &strs[len(strs)-2], &strs[len(strs)-1]
		return lp
	}
	k := &keyPairs{pairs: make([]*dto.LabelPair, len(labels))}
	for i, l := range labels {
		k.pairs[i] = pair(i, l.Name, l.Value)
		k.keyedInstance = k.keyedInstance || l.Name == instanceLabel
	}
	k.instance = pair(len(labels), instanceLabel, "")
	return k
}

// sanitize does sanitizeLabels.
func (k *keyPairs) sanitize(m *dto.Metric) {
	missing := 0
	for _, gp := range k.pairs {
		found := false
		for _, lp := range m.Label {
			if lp.GetName() == gp.GetName() {
				lp.Value = gp.Value
				found = true
			}
		}
		if !found {
			missing++
		}
	}
	hasInstance := k.keyedInstance || hasPair(m.Label, instanceLabel)
	if !hasInstance {
		missing++
	}
	if missing > 0 {
		m.Label = k.grow(m.Label, missing)
		for _, gp := range k.pairs {
			if !hasPair(m.Label, gp.GetName()) {
				m.Label = append(m.Label, gp)
			}
		}
		if !hasInstance {
			m.Label = append(m.Label, k.instance)
		}
	}
	slices.SortStableFunc(m.Label, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
}

func hasPair(labels []*dto.LabelPair, name string) bool {
	for _, lp := range labels {
		if lp.GetName() == name {
			return true
		}
	}
	return false
}

// grow returns labels with room for n more, its capacity cut from free
// (prepare sizes free for a whole push; a single metric gets what it needs).
func (k *keyPairs) grow(labels []*dto.LabelPair, n int) []*dto.LabelPair {
	need := len(labels) + n
	if need > len(k.free) {
		k.free = make([]*dto.LabelPair, need)
	}
	out := append(k.free[:0:need], labels...)
	k.free = k.free[need:]
	return out
}

// seriesHash identifies a series by metric name and sorted label pairs, as
// client_golang's consistency check does.
func seriesHash(name string, labels []*dto.LabelPair) uint64 {
	// The bytes gathered on the stack (for most series) and hashed at
	// once: the streaming digest's nine calls per label were 3 % of a
	// push's CPU. The hashes are stored: the bytes hashed must not change.
	var arr [256]byte
	b := append(arr[:0], name...)
	b = append(b, model.SeparatorByte)
	for _, lp := range labels {
		b = append(b, lp.GetName()...)
		b = append(b, model.SeparatorByte)
		b = append(b, lp.GetValue()...)
		b = append(b, model.SeparatorByte)
	}
	return xxhash.Sum64(b)
}

func formatLabels(labels []*dto.LabelPair) string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, lp := range labels {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(lp.GetName())
		sb.WriteByte('=')
		v := lp.GetValue()
		if len(v) > maxQuotedValue {
			// A message stays short even for a huge label value.
			sb.WriteString(strconv.Quote(v[:maxQuotedValue]))
			sb.WriteString("…")
			continue
		}
		sb.WriteString(strconv.Quote(v))
	}
	sb.WriteByte('}')
	return sb.String()
}

// maxQuotedValue bounds a label value quoted in a message.
const maxQuotedValue = 100

// collected names a series the way the reference's messages do (they come
// from client_golang's registry): `collected metric "name" {labels}`, where
// the reference prints the labels in protobuf text form. Scripts match the
// words around them. labels may be empty.
func collected(name, labels string) string {
	if labels == "" {
		return fmt.Sprintf("collected metric %q", name)
	}
	return fmt.Sprintf("collected metric %q %s", name, labels)
}

// timestampLabels are the labels of a group's timestamp families: its
// grouping labels and, without an instance label, instance="".
func timestampLabels(key grouping.Key) []*dto.LabelPair {
	m := &dto.Metric{}
	sanitizeLabels(m, key)
	return m.Label
}

// timestampFamily builds push_time_seconds or push_failure_time_seconds for a
// group, whose timestampLabels are labels; a zero t gives the value 0
// ("never").
func timestampFamily(labels []*dto.LabelPair, name, help string, t, pushed time.Time) (*family.Family, uint64, error) {
	var v float64
	if !t.IsZero() {
		v = float64(t.UnixNano()) / 1e9
	}
	f, err := family.NewGauge(name, help, labels, v, pushed)
	if err != nil {
		return nil, 0, err
	}
	return f, seriesHash(name, labels), nil
}

// addTimestamps completes a prepared push with the group's timestamp
// families.
func (p *prepared) addTimestamps(pushTime *family.Family, pushTimeHash uint64, failure *family.Family, failureHash uint64) {
	p.families = append(p.families, pushTime, failure)
	p.series = append(p.series, []uint64{pushTimeHash}, []uint64{failureHash})
	p.byName = make(map[string]int, len(p.families))
	for i, f := range p.families {
		p.byName[f.Name] = i
	}
}

// has reports whether the push contains a family of that name.
func (p *prepared) has(name string) bool {
	_, ok := p.byName[name]
	return ok
}

func (p *prepared) get(name string) *family.Family {
	if i, ok := p.byName[name]; ok {
		return p.families[i]
	}
	return nil
}

// instances maps the hash of each pushed series to its instance label, for
// a group whose key has none (else nil: the key's applies to all).
func (p *prepared) instances(key grouping.Key) map[uint64]string {
	if _, _, keyed := jobInstance(key); keyed {
		return nil
	}
	m := map[uint64]string{}
	for i, ms := range p.metrics {
		for j, metric := range ms {
			for _, lp := range metric.Label {
				if lp.GetName() == instanceLabel {
					m[p.series[i][j]] = lp.GetValue()
				}
			}
		}
	}
	return m
}
