package store_test

import (
	"errors"
	"testing"

	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/store/storetest"
)

func TestLimits(t *testing.T) {
	tests := []struct {
		name     string
		opts     store.Options
		prior    []string // bodies pushed to job=p0, p1, ... first
		push     string   // then this body to job=x
		wantKind store.LimitKind
		wantErr  bool
	}{
		{"per push: at the limit", store.Options{MaxSeriesPerPush: 2}, nil, "a 1\nb 2\n", 0, false},
		{"per push: over", store.Options{MaxSeriesPerPush: 2}, nil, "a 1\nb 2\nc 3\n", store.SeriesPerPush, true},
		{"total: fits", store.Options{MaxSeries: 3}, []string{"a 1\nb 1\n"}, "c 1\n", 0, false},
		{"total: over", store.Options{MaxSeries: 3}, []string{"a 1\nb 1\n"}, "c 1\nd 1\n", store.TotalSeries, true},
		{"total: replacing own series does not grow", store.Options{MaxSeries: 2}, []string{"a 1\nb 1\n"}, "", 0, false},
		{"groups: at the limit", store.Options{MaxGroups: 2}, []string{"a 1\n"}, "b 1\n", 0, false},
		{"groups: over", store.Options{MaxGroups: 1}, []string{"a 1\n"}, "b 1\n", store.TotalGroups, true},
		{"groups: existing group may push", store.Options{MaxGroups: 1}, []string{"a 1\n"}, "", 0, false},
		{"labels per series: job+instance+2 fits 4", store.Options{MaxLabelsPerSeries: 4}, nil, "a{x=\"1\",y=\"2\"} 1\n", 0, false},
		{"labels per series: over", store.Options{MaxLabelsPerSeries: 3}, nil, "a{x=\"1\",y=\"2\"} 1\n", store.LabelsPerSeries, true},
		{"label name length: over", store.Options{MaxLabelNameLength: 5}, nil, "a{longname=\"1\"} 1\n", store.LabelNameLength, true},
		{"label value length: at the limit", store.Options{MaxLabelValueLength: 3}, nil, "a{x=\"abc\"} 1\n", 0, false},
		{"label value length: over", store.Options{MaxLabelValueLength: 3}, nil, "a{x=\"abcd\"} 1\n", store.LabelValueLength, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := store.New(tt.opts)
			for i, body := range tt.prior {
				if err := s.Push(storetest.Key(t, "job=p"+string(rune('0'+i))), storetest.Families(t, body), true); err != nil {
					t.Fatal(err)
				}
			}
			before, beforeGen := s.Stats(), s.View().Gen
			k := storetest.Key(t, "job=x")
			if tt.push == "" {
				k = storetest.Key(t, "job=p0") // re-push the prior group with the same series
				tt.push = tt.prior[0]
			}
			err := s.Push(k, storetest.Families(t, tt.push), true)
			var le *store.LimitError
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Push: %v", err)
				}
				return
			}
			if !errors.As(err, &le) || le.Kind != tt.wantKind {
				t.Fatalf("err = %v, want a LimitError of kind %d", err, tt.wantKind)
			}
			if errors.Is(err, store.ErrInvalid) {
				t.Errorf("a limit error must not count as invalid content")
			}
			if s.Stats() != before || s.View().Gen != beforeGen {
				t.Errorf("a refused push changed the store")
			}
		})
	}
}
