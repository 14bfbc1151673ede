package rules_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestAlertsFile checks contrib/prometheus/alerts.yml with promtool (Debian
// package prometheus): its syntax (check rules) and its behaviour on the
// series of alerts_test.yml (test rules). Without promtool the test is
// skipped, except with CI=true, where it fails.
func TestAlertsFile(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool is not installed (Debian package prometheus): %v", err)
		}
		t.Skipf("promtool is not installed (Debian package prometheus): %v", err)
	}
	dir := filepath.Join("..", "..", "contrib", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
