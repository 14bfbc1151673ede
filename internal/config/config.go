// Package config defines pushgate's command line: every flag of
// prometheus/pushgateway with the same name and default, plus pushgate's own.
// Flags live only here; every other package takes a plain Options struct.
package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
)

// Config is the parsed command line.
type Config struct {
	Web                 *web.FlagConfig
	TelemetryPath       string
	ExternalURL         *url.URL
	RoutePrefix         string // normalized: "" or "/x" (no trailing slash)
	ExternalPathPrefix  string // path of ExternalURL, normalized like RoutePrefix
	EnableLifecycle     bool
	EnableAdminAPI      bool
	StoragePath         string
	InMemory            bool
	PersistenceFile     string
	PersistenceInterval time.Duration
	// EtcdEndpoints, when set, keep the groups in etcd, shared by replicas.
	EtcdEndpoints           []string
	EtcdPrefix              string
	EtcdConfigFile          string
	EtcdMaxRequestBytes     int
	DisableConsistencyCheck bool
	EnableUTF8Names         bool
	AccessConfig            string
	MaxBodySize             int64
	MaxDecompressedSize     int64
	MaxSeriesPerPush        int
	MaxSeries               int
	MaxGroups               int
	MaxLabelsPerSeries      int
	MaxLabelNameLength      int
	MaxLabelValueLength     int
	MaxConcurrentPushes     int
	MaxDecodingMemory       int64
	// ExpireAfter deletes groups not pushed successfully for that long;
	// 0 means never (the reference's behaviour).
	ExpireAfter       time.Duration
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	Log               promslog.Config
	// Flags maps every flag name to its value, for the status API and page.
	Flags map[string]string

	// RulesFile is the per-group rules file (internal/rules); "" for none.
	RulesFile string
}

// ErrExit is returned by Parse when it has printed the help or version and
// the program should exit successfully.
var ErrExit = errors.New("exit requested")

// Parse parses args (without the program name). Help and version output go
// to stdout.
func Parse(args []string, stdout io.Writer) (*Config, error) {
	var (
		app = kingpin.New("pushgate", "A Prometheus Pushgateway: a drop-in replacement for prometheus/pushgateway that is durable, fast at scale and safe to operate.")
		cfg = &Config{Log: promslog.Config{}}

		maxBody         units.Base2Bytes
		maxDecompressed units.Base2Bytes
		maxDecoding     units.Base2Bytes
		etcdEndpoints   string
		exit            bool
	)
	app.UsageWriter(stdout)
	app.ErrorWriter(stdout)
	app.Terminate(func(int) { exit = true })
	app.HelpFlag.Short('h')
	app.Version(version.Print("pushgate"))

	cfg.Web = kingpinflag.AddFlags(app, ":9091")
	app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").StringVar(&cfg.TelemetryPath)
	app.Flag("web.external-url", "The URL under which the Pushgateway is externally reachable.").Default("").URLVar(&cfg.ExternalURL)
	app.Flag("web.route-prefix", "Prefix for the internal routes of web endpoints. Defaults to the path of --web.external-url.").Default("").StringVar(&cfg.RoutePrefix)
	app.Flag("web.enable-lifecycle", "Enable shutdown via HTTP request.").Default("false").BoolVar(&cfg.EnableLifecycle)
	app.Flag("web.enable-admin-api", "Enable API endpoints for admin control actions.").Default("false").BoolVar(&cfg.EnableAdminAPI)
	app.Flag("web.access-config", "Path to a YAML file of users, tokens and their scopes (read, push to matching groups, admin). Empty: everything is allowed, as in the reference.").Default("").StringVar(&cfg.AccessConfig)
	app.Flag("storage.path", "Directory of the durable storage. Every push is on disk (fsynced) there before it is acknowledged.").Default("data").StringVar(&cfg.StoragePath)
	app.Flag("storage.in-memory", "Keep pushed metrics in memory only, like the reference without --persistence.file; --persistence.file then works as in the reference.").Default("false").BoolVar(&cfg.InMemory)
	app.Flag("persistence.file", "A persistence file of prometheus/pushgateway. With durable storage it is imported once, on the first start, and left untouched; with --storage.in-memory it is loaded at start and rewritten every --persistence.interval, as the reference does.").Default("").StringVar(&cfg.PersistenceFile)
	app.Flag("storage.etcd.endpoints", "Comma-separated client URLs of an etcd cluster. Setting it keeps the groups in etcd instead of --storage.path: several replicas of the gateway then share every group, and a push is acknowledged once a quorum of etcd has it. See README, High availability.").Default("").StringVar(&etcdEndpoints)
	app.Flag("storage.etcd.prefix", "Prefix of every etcd key of this gateway; gateways with different prefixes share one etcd independently.").Default("/pushgate/").StringVar(&cfg.EtcdPrefix)
	app.Flag("storage.etcd.config.file", "YAML file with etcd's TLS (tls_config: ca_file, cert_file, key_file, server_name, insecure_skip_verify), username, password or password_file, dial_timeout and request_timeout.").Default("").StringVar(&cfg.EtcdConfigFile)
	app.Flag("storage.etcd.max-request-bytes", "The largest etcd request the gateway sends: a push whose group would be stored larger is refused with 413. Keep it at most etcd's own --max-request-bytes (default 1.5 MiB); raise both together.").Default("1572864").IntVar(&cfg.EtcdMaxRequestBytes)
	app.Flag("persistence.interval", "With --storage.in-memory and --persistence.file: the interval at which the persistence file is rewritten. With durable storage: how often the storage file is checked for compaction.").Default("5m").DurationVar(&cfg.PersistenceInterval)
	app.Flag("push.disable-consistency-check", "Do not check consistency of pushed metrics. DANGEROUS.").Default("false").BoolVar(&cfg.DisableConsistencyCheck)
	app.Flag("push.enable-utf8-names", "Allow UTF-8 characters in metric and label names.").Default("false").BoolVar(&cfg.EnableUTF8Names)
	app.Flag("push.rules.file", "Path to a YAML file of per-group rules: selectors over grouping labels with expect_every (exposed as pushgate_group_up) and expire_after; the first matching rule applies. Re-read on SIGHUP and POST /-/reload. Empty: no rules.").Default("").StringVar(&cfg.RulesFile)
	app.Flag("push.max-body-size", "Maximum size of a push request body as sent (possibly compressed). 0 means no limit.").Default("64MiB").BytesVar(&maxBody)
	app.Flag("push.max-decompressed-size", "Maximum size of a push request body after decompression. 0 means no limit.").Default("256MiB").BytesVar(&maxDecompressed)
	app.Flag("push.max-series-per-push", "Maximum number of series in one push. 0 means no limit.").Default("100000").IntVar(&cfg.MaxSeriesPerPush)
	app.Flag("storage.max-series", "Maximum number of series the gateway holds (push_time_seconds and push_failure_time_seconds not counted); pushes that would exceed it are refused. 0 means no limit.").Default("10000000").IntVar(&cfg.MaxSeries)
	app.Flag("storage.max-groups", "Maximum number of groups the gateway holds; pushes that would create more are refused. 0 means no limit.").Default("1000000").IntVar(&cfg.MaxGroups)
	app.Flag("push.max-labels-per-series", "Maximum number of labels of a pushed series, grouping labels included. 0 means no limit (the default, as in the reference).").Default("0").IntVar(&cfg.MaxLabelsPerSeries)
	app.Flag("push.max-label-name-length", "Maximum length of a label name in bytes. 0 means no limit (the default, as in the reference).").Default("0").IntVar(&cfg.MaxLabelNameLength)
	app.Flag("push.max-label-value-length", "Maximum length of a label value in bytes. 0 means no limit (the default, as in the reference).").Default("0").IntVar(&cfg.MaxLabelValueLength)
	app.Flag("push.max-concurrent", "Maximum number of pushes and deletes handled at once; more are refused at once with 429. 0 means no limit.").Default("1024").IntVar(&cfg.MaxConcurrentPushes)
	app.Flag("push.max-decoding-memory", "Maximum estimated memory held by all push bodies being decoded at the same time. A push that does not fit in what is left is refused with 429, one that alone needs more with 413. 0 means no limit.").Default("256MiB").BytesVar(&maxDecoding)
	app.Flag("push.expire-after", "Delete a group that has not been pushed successfully for this long. A push's Pushgate-Expire-After header overrides it for its group. 0 means never, as in the reference. See README, Group expiry.").Default("0").DurationVar(&cfg.ExpireAfter)
	app.Flag("web.read-header-timeout", "Time a client has to send its request headers.").Default("30s").DurationVar(&cfg.ReadHeaderTimeout)
	app.Flag("web.read-timeout", "Time a client has to send a whole request, body included. 0 means no limit.").Default("5m").DurationVar(&cfg.ReadTimeout)
	app.Flag("web.write-timeout", "Time to write a response, from the end of the request headers. 0 means no limit.").Default("10m").DurationVar(&cfg.WriteTimeout)
	app.Flag("web.idle-timeout", "Time an idle keep-alive connection is kept open.").Default("5m").DurationVar(&cfg.IdleTimeout)
	promslogflag.AddFlags(app, &cfg.Log)

	if _, err := app.Parse(args); err != nil {
		return nil, fmt.Errorf("parse flags: %w", err)
	}
	if exit {
		return nil, ErrExit
	}
	cfg.MaxBodySize, cfg.MaxDecompressedSize, cfg.MaxDecodingMemory = int64(maxBody), int64(maxDecompressed), int64(maxDecoding)
	for e := range strings.SplitSeq(etcdEndpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			cfg.EtcdEndpoints = append(cfg.EtcdEndpoints, e)
		}
	}
	cfg.RoutePrefix = routePrefix(cfg.RoutePrefix, cfg.ExternalURL)
	cfg.ExternalPathPrefix = routePrefix("", cfg.ExternalURL)

	// Flags shown on the status page: kingpin's own (help, version) left out.
	cfg.Flags = map[string]string{}
	for _, f := range app.Model().Flags {
		switch f.Name {
		case "help", "help-long", "help-man", "version", "completion-bash", "completion-script-bash", "completion-script-zsh":
			continue
		}
		cfg.Flags[f.Name] = f.Value.String()
	}
	return cfg, cfg.Validate()
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.TelemetryPath, "/") {
		errs = append(errs, fmt.Errorf("--web.telemetry-path must start with /: %q", c.TelemetryPath))
	}
	if strings.HasPrefix(c.TelemetryPath, "/metrics/") {
		errs = append(errs, fmt.Errorf("--web.telemetry-path %q would shadow the push API", c.TelemetryPath))
	}
	if !c.InMemory && c.StoragePath == "" {
		errs = append(errs, errors.New("--storage.path must not be empty (use --storage.in-memory for no durable storage)"))
	}
	if len(c.EtcdEndpoints) > 0 {
		if c.InMemory {
			errs = append(errs, errors.New("--storage.etcd.endpoints and --storage.in-memory exclude each other"))
		}
		if c.EtcdPrefix == "" {
			errs = append(errs, errors.New("--storage.etcd.prefix must not be empty"))
		}
		if c.EtcdMaxRequestBytes < 4096 {
			errs = append(errs, fmt.Errorf("--storage.etcd.max-request-bytes must be at least 4096, got %d", c.EtcdMaxRequestBytes))
		}
	}
	if c.PersistenceInterval <= 0 {
		errs = append(errs, fmt.Errorf("--persistence.interval must be positive, got %s", c.PersistenceInterval))
	}
	for name, v := range map[string]int{
		"--push.max-series-per-push": c.MaxSeriesPerPush, "--storage.max-series": c.MaxSeries,
		"--storage.max-groups": c.MaxGroups, "--push.max-labels-per-series": c.MaxLabelsPerSeries,
		"--push.max-label-name-length": c.MaxLabelNameLength, "--push.max-label-value-length": c.MaxLabelValueLength,
		"--push.max-concurrent": c.MaxConcurrentPushes,
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %d", name, v))
		}
	}
	if c.ExpireAfter < 0 {
		errs = append(errs, fmt.Errorf("--push.expire-after must not be negative, got %s", c.ExpireAfter))
	}
	if c.MaxBodySize < 0 || c.MaxDecompressedSize < 0 || c.MaxDecodingMemory < 0 {
		errs = append(errs, errors.New("--push.max-body-size, --push.max-decompressed-size and --push.max-decoding-memory must not be negative"))
	}
	return errors.Join(errs...)
}

// routePrefix returns the effective route prefix: prefix, or else the path
// of externalURL, with one leading and no trailing "/"; "/" becomes "" (the
// reference's computeRoutePrefix rules). The path is also cleaned: repeated
// slashes ("//pg//") would otherwise give a prefix that no request reaches,
// since the server redirects unclean paths before it looks at the prefix.
// (The reference keeps "//" as the prefix "/", under which it serves nothing.)
func routePrefix(prefix string, externalURL *url.URL) string {
	if prefix == "" && externalURL != nil {
		prefix = externalURL.Path
	}
	if p := path.Clean("/" + prefix); p != "/" {
		return p
	}
	return ""
}
