// Package grafana holds pushgate's Grafana dashboard, pushgate.json, a
// file to import into Grafana, kept as plain JSON so that it can be edited
// in Grafana and exported back. The package has no code: its tests decode
// the dashboard strictly with the types of Grafana's foundation SDK, check
// its structure, parse every query with Prometheus' PromQL parser, and keep
// metrics.txt, the metrics the queries select, which the root module's e2e
// suite checks against a running pushgate.
//
// It is a module of its own so that the root module does not depend on
// Prometheus. Run its test, and refresh metrics.txt after changing a query:
//
//	cd contrib/grafana && go test ./...
//	cd contrib/grafana && go test ./... -update
package grafana
