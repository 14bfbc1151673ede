package grafana_test

import (
	"errors"
	"os"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// TestSchema decodes the dashboard strictly with the types Grafana's
// foundation SDK generates from Grafana's schema (v0.0.22): an unknown or
// misspelt field, a missing required one, or a value of the wrong type in
// the dashboard, its variables, panels or their options fails here rather
// than being silently ignored by Grafana at import.
func TestSchema(t *testing.T) {
	// The SDK keeps its panel and query types in a package-level registry.
	plugins.RegisterDefaultPlugins()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	// The classic dashboard model (schemaVersion 39, Grafana 10.4 and
	// later), not dashboardv2, the model of Grafana 12's dynamic dashboards,
	// which older Grafanas cannot import.
	//lint:ignore SA1019 see above
	var d dashboard.Dashboard
	if err := d.UnmarshalJSONStrict(b); failed(err) {
		t.Errorf("%s does not fit Grafana's dashboard schema:\n%v", dashboardFile, err)
	}
	if err := d.Validate(); failed(err) {
		t.Errorf("%s: %v", dashboardFile, err)
	}
}

// failed reports whether err holds an error: the SDK returns its error
// list as an error even when the list is empty.
func failed(err error) bool {
	var list cog.BuildErrors
	if errors.As(err, &list) {
		return len(list) > 0
	}
	return err != nil
}
