package config_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pushgate/pushgate/internal/config"
)

func parse(t *testing.T, args ...string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(args, io.Discard)
	if err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	return cfg
}

// TestReferenceFlags pins the flags pushgate shares with
// prometheus/pushgateway v1.11, by name and default: a command line written
// for the reference must start pushgate with the same meaning. The values
// are as the status API shows them (Config.Flags).
func TestReferenceFlags(t *testing.T) {
	cfg := parse(t)
	for name, want := range map[string]string{
		"web.listen-address":             ":9091",
		"web.config.file":                "",
		"web.systemd-socket":             "false",
		"web.telemetry-path":             "/metrics",
		"web.external-url":               "",
		"web.route-prefix":               "",
		"web.enable-lifecycle":           "false",
		"web.enable-admin-api":           "false",
		"persistence.file":               "",
		"persistence.interval":           "5m0s",
		"push.disable-consistency-check": "false",
		"push.enable-utf8-names":         "false",
		"log.level":                      "info",
		"log.format":                     "logfmt",
	} {
		got, ok := cfg.Flags[name]
		if !ok {
			t.Errorf("flag --%s is missing", name)
			continue
		}
		if got != want {
			t.Errorf("--%s defaults to %q, want %q as in the reference", name, got, want)
		}
	}
	// kingpin's own flags are not settings; the status page leaves them out.
	for _, name := range []string{"help", "help-long", "help-man", "version", "completion-bash"} {
		if _, ok := cfg.Flags[name]; ok {
			t.Errorf("Flags lists --%s", name)
		}
	}
}

// TestDefaults pins pushgate's own defaults, which the flag help promises.
func TestDefaults(t *testing.T) {
	cfg := parse(t)
	const mib = 1 << 20
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"TelemetryPath", cfg.TelemetryPath, "/metrics"},
		{"ExternalURL", cfg.ExternalURL == nil || cfg.ExternalURL.String() == "", true},
		{"RoutePrefix", cfg.RoutePrefix, ""},
		{"StoragePath", cfg.StoragePath, "data"},
		{"InMemory", cfg.InMemory, false},
		{"PersistenceInterval", cfg.PersistenceInterval, 5 * time.Minute},
		{"MaxBodySize", cfg.MaxBodySize, int64(64 * mib)},
		{"MaxDecompressedSize", cfg.MaxDecompressedSize, int64(256 * mib)},
		{"MaxDecodingMemory", cfg.MaxDecodingMemory, int64(256 * mib)},
		{"MaxSeriesPerPush", cfg.MaxSeriesPerPush, 100000},
		{"MaxSeries", cfg.MaxSeries, 10000000},
		{"MaxGroups", cfg.MaxGroups, 1000000},
		{"MaxConcurrentPushes", cfg.MaxConcurrentPushes, 1024},
		{"ReadHeaderTimeout", cfg.ReadHeaderTimeout, 30 * time.Second},
		{"ReadTimeout", cfg.ReadTimeout, 5 * time.Minute},
		{"WriteTimeout", cfg.WriteTimeout, 10 * time.Minute},
		{"IdleTimeout", cfg.IdleTimeout, 5 * time.Minute},
		{"ExpireAfter (never, as in the reference)", cfg.ExpireAfter, time.Duration(0)},
		{"listen address", (*cfg.Web.WebListenAddresses)[0], ":9091"},
	} {
		if c.got != c.want {
			t.Errorf("%s defaults to %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestSizes(t *testing.T) {
	cfg := parse(t, "--push.max-body-size=1KiB", "--push.max-decompressed-size=2MB", "--push.max-decoding-memory=0")
	if cfg.MaxBodySize != 1024 || cfg.MaxDecompressedSize != 2<<20 || cfg.MaxDecodingMemory != 0 {
		t.Errorf("sizes: %d, %d, %d; want 1024, %d, 0", cfg.MaxBodySize, cfg.MaxDecompressedSize, cfg.MaxDecodingMemory, 2<<20)
	}
}

// TestRoutePrefix pins the reference's derivation of the route prefix: the
// flag if set, else the path of --web.external-url; "/" means none;
// otherwise one leading and no trailing slash. ExternalPathPrefix is the
// path of the external URL alone, normalized the same way.
func TestRoutePrefix(t *testing.T) {
	tests := []struct {
		name              string
		args              []string
		prefix, extPrefix string
		flagShownInStatus string
	}{
		{"none", nil, "", "", ""},
		{"flag", []string{"--web.route-prefix=/pg"}, "/pg", "", "/pg"},
		{"flag without slashes", []string{"--web.route-prefix=pg"}, "/pg", "", "/pg"},
		{"flag with trailing slash", []string{"--web.route-prefix=/pg/"}, "/pg", "", "/pg"},
		{"flag with repeated slashes", []string{"--web.route-prefix=//pg//"}, "/pg", "", "/pg"},
		{"flag nested", []string{"--web.route-prefix=/a/b/"}, "/a/b", "", "/a/b"},
		{"flag root", []string{"--web.route-prefix=/"}, "", "", ""},
		{"flag only slashes", []string{"--web.route-prefix=//"}, "", "", ""},
		{"flag with inner slashes", []string{"--web.route-prefix=/a//b/./c"}, "/a/b/c", "", "/a/b/c"},
		{"external URL unclean", []string{"--web.external-url=http://example.com//pg//"}, "/pg", "/pg", "/pg"},
		{"external URL", []string{"--web.external-url=http://example.com/pg/"}, "/pg", "/pg", "/pg"},
		{"external URL root", []string{"--web.external-url=http://example.com/"}, "", "", ""},
		{"external URL without path", []string{"--web.external-url=http://example.com"}, "", "", ""},
		{"flag wins over external URL", []string{"--web.external-url=http://example.com/outer", "--web.route-prefix=/inner"}, "/inner", "/outer", "/inner"},
		{"proxy strips the path", []string{"--web.external-url=http://example.com/outer", "--web.route-prefix=/"}, "", "/outer", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, tt.args...)
			if cfg.RoutePrefix != tt.prefix || cfg.ExternalPathPrefix != tt.extPrefix {
				t.Errorf("RoutePrefix %q, ExternalPathPrefix %q; want %q, %q", cfg.RoutePrefix, cfg.ExternalPathPrefix, tt.prefix, tt.extPrefix)
			}
			// The reference's status page shows the derived prefix.
			if got := cfg.Flags["web.route-prefix"]; got != tt.flagShownInStatus {
				t.Errorf("Flags[web.route-prefix] = %q, want %q", got, tt.flagShownInStatus)
			}
		})
	}
}

// TestInvalid pins what Parse refuses: each case names the flag in the
// error, and Validate reports every problem at once.
func TestInvalid(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // substrings of the error
	}{
		{"unknown flag", []string{"--no.such-flag"}, []string{"no.such-flag"}},
		// kingpin's value errors do not name the flag; the value is named.
		{"bad duration", []string{"--persistence.interval=soon"}, []string{`"soon"`}},
		{"bad size", []string{"--push.max-body-size=lots"}, []string{"lots"}},
		{"bad URL", []string{"--web.external-url=:/x"}, []string{"invalid URL"}},
		{"relative telemetry path", []string{"--web.telemetry-path=metrics"}, []string{"--web.telemetry-path must start with /"}},
		{"telemetry path shadows push API", []string{"--web.telemetry-path=/metrics/job"}, []string{"shadow the push API"}},
		{"empty storage path", []string{"--storage.path="}, []string{"--storage.path must not be empty"}},
		{"zero interval", []string{"--persistence.interval=0s"}, []string{"--persistence.interval must be positive"}},
		{"negative interval", []string{"--persistence.interval=-1m"}, []string{"--persistence.interval must be positive"}},
		{"negative limit", []string{"--storage.max-groups=-1"}, []string{"--storage.max-groups must not be negative"}},
		{"negative expiry", []string{"--push.expire-after=-1s"}, []string{"--push.expire-after must not be negative"}},
		{"all at once", []string{"--web.telemetry-path=x", "--push.max-concurrent=-2", "--push.max-series-per-push=-3"}, []string{
			"--web.telemetry-path must start with /", "--push.max-concurrent must not be negative", "--push.max-series-per-push must not be negative",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse(tt.args, io.Discard)
			if err == nil {
				t.Fatalf("Parse(%q): no error", tt.args)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// Valid combinations that look odd: an empty --storage.path is fine
// without durable storage, and a telemetry path merely starting like the
// push API's is not under it.
func TestValidEdges(t *testing.T) {
	for _, args := range [][]string{
		{"--storage.in-memory", "--storage.path="},
		{"--web.telemetry-path=/metricsx"},
		{"--web.telemetry-path=/metrics/"},
	} {
		if _, err := config.Parse(args, io.Discard); err != nil && !strings.Contains(err.Error(), "shadow") {
			t.Errorf("Parse(%q): %v", args, err)
		}
	}
}

// --help and --version print to stdout and ask the program to exit
// successfully (ErrExit), instead of kingpin exiting the process.
func TestHelpAndVersion(t *testing.T) {
	for _, tt := range []struct{ arg, want string }{
		{"--help", "--web.route-prefix"},
		{"-h", "--persistence.file"},
		{"--version", "pushgate, version"},
	} {
		var out bytes.Buffer
		cfg, err := config.Parse([]string{tt.arg}, &out)
		if !errors.Is(err, config.ErrExit) || cfg != nil {
			t.Errorf("Parse(%s): %v, %v; want nil and ErrExit", tt.arg, cfg, err)
		}
		if !strings.Contains(out.String(), tt.want) {
			t.Errorf("Parse(%s) printed %q, want it to contain %q", tt.arg, out.String(), tt.want)
		}
	}
}

func TestRulesFile(t *testing.T) {
	if got := parse(t).RulesFile; got != "" {
		t.Errorf("RulesFile defaults to %q, want none", got)
	}
	if got := parse(t, "--push.rules.file=/etc/pushgate/rules.yml").RulesFile; got != "/etc/pushgate/rules.yml" {
		t.Errorf("RulesFile = %q", got)
	}
}
