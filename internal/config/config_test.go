package config_test

import (
	"io"
	"testing"

	"github.com/pushgate/pushgate/internal/config"
)

// The reference limits no label, so by default neither does pushgate:
// whatever the reference accepts within the default body size is accepted.
func TestLabelLimitsOffByDefault(t *testing.T) {
	cfg, err := config.Parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxLabelsPerSeries != 0 || cfg.MaxLabelNameLength != 0 || cfg.MaxLabelValueLength != 0 {
		t.Errorf("label limits default to %d labels, %d-byte names, %d-byte values; want 0 (off)",
			cfg.MaxLabelsPerSeries, cfg.MaxLabelNameLength, cfg.MaxLabelValueLength)
	}
	cfg, err = config.Parse([]string{"--push.max-label-value-length=10"}, io.Discard)
	if err != nil || cfg.MaxLabelValueLength != 10 {
		t.Errorf("--push.max-label-value-length=10: got %d, %v", cfg.MaxLabelValueLength, err)
	}
}
