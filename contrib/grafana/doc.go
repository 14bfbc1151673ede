// Package grafana holds pushgate's Grafana dashboard, pushgate.json, a
// file to import into Grafana. The package has no code: its test checks
// the dashboard's structure, parses every query with Prometheus' PromQL
// parser, and keeps metrics.txt, the metrics the queries select, which the
// root module's e2e suite checks against a running pushgate.
//
// It is a module of its own so that the root module does not depend on
// Prometheus. Run its test, and refresh metrics.txt after changing a query:
//
//	cd contrib/grafana && go test ./...
//	cd contrib/grafana && go test ./... -update
package grafana
