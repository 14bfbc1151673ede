package rules

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pushgate/pushgate/internal/store"
)

// GroupUpName is the family the Collector exposes.
const GroupUpName = "pushgate_group_up"

const instanceLabel = "instance"

const groupUpHelp = "1 if the group's last push succeeded and is at most expect_every old (the first matching rule of --push.rules.file), else 0. Only groups matching a rule with expect_every have a series."

// Reserved lists the collector's family for the store's check, so that a
// push cannot bring a family of the same name. It has no series while no
// group matches a rule, so gathering the registry would miss it.
func Reserved() []store.Reserved {
	return []store.Reserved{{Name: GroupUpName, Type: dto.MetricType_GAUGE}}
}

// Viewer gives a snapshot of the groups.
type Viewer interface {
	View() *store.View
}

// Collector exposes pushgate_group_up for each group that matches a rule
// with expect_every, labelled with the group's grouping labels (and
// instance="" if the key has no instance, as the pushed series). It is
// computed at scrape time from the store's view and the current rules.
//
// It is an unchecked collector (Describe sends nothing): the label names
// differ between groups, so there is no one Desc. Every series shares the
// name, help and type, so they gather into one family.
type Collector struct {
	rules *Set
	store Viewer
	now   func() time.Time
}

// NewCollector returns a collector over the groups of v and the rules of s.
// A nil now means time.Now.
func NewCollector(s *Set, v Viewer, now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	return &Collector{rules: s, store: v, now: now}
}

// Describe sends nothing: the collector is unchecked.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect sends one gauge per group that matches a rule with expect_every.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	// Without a rule that expects pushes no group has a series: skip the
	// walk over every group.
	if !slices.ContainsFunc(c.rules.Rules(), func(r Rule) bool { return r.ExpectEvery > 0 }) {
		return
	}
	now := c.now()
	// One Desc per set of label names: groups of one job usually share it.
	descs := map[string]*prometheus.Desc{}
	var names, values []string
	for _, g := range c.store.View().Groups {
		r, ok := c.rules.Lookup(g.Key)
		if !ok || r.ExpectEvery <= 0 {
			continue
		}
		names, values = names[:0], values[:0]
		sig := ""
		for _, l := range g.Key.Labels() {
			names = append(names, l.Name)
			values = append(values, l.Value)
			sig += l.Name + "\xff"
		}
		// Like the group's pushed series, which get instance="" when the
		// key has no instance: with honor_labels, the series then keep an
		// empty instance instead of the gateway's, and join with
		// push_time_seconds on the same labels.
		if !g.Key.Has(instanceLabel) {
			names = append(names, instanceLabel)
			values = append(values, "")
			sig += instanceLabel + "\xff"
		}
		desc, ok := descs[sig]
		if !ok {
			desc = prometheus.NewDesc(GroupUpName, groupUpHelp, append([]string(nil), names...), nil)
			descs[sig] = desc
		}
		m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, up(g, r.ExpectEvery, now), values...)
		if err != nil {
			// Not expected (the store validated the key), but an
			// invalid metric would fail the whole scrape: leave the
			// group out instead.
			continue
		}
		ch <- m
	}
}

// up is 1 if g's last push succeeded at most every ago, else 0.
func up(g *store.Group, every time.Duration, now time.Time) float64 {
	if g.PushTime.IsZero() || !g.LastPushSuccessful() || now.Sub(g.PushTime) > every {
		return 0
	}
	return 1
}
