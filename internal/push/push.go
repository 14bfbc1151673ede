// Package push serves the push API: PUT, POST and DELETE on
// /metrics/job/<JOB>{/<LABEL_NAME>/<LABEL_VALUE>}, with the URL scheme,
// body formats, status codes and response bodies of prometheus/pushgateway.
package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/pushgate/pushgate/internal/grouping"
	"github.com/pushgate/pushgate/internal/store"
	"github.com/pushgate/pushgate/internal/textparse"
)

// Store is what the push API needs of the store.
type Store interface {
	// PushExpiring stores a push; expireAfter is the group's own expiry
	// (0: none, store.NeverExpire: never), from ExpireHeader. It must not
	// keep fams or any message in them once it returns (strings it may
	// keep): their memory is reused for later pushes.
	PushExpiring(key grouping.Key, fams map[string]*dto.MetricFamily, replace bool, expireAfter time.Duration) error
	Delete(key grouping.Key) error
}

// Options configure the push API. The zero value accepts unbounded bodies.
type Options struct {
	// UTF8Names accepts UTF-8 metric and label names (--push.enable-utf8-names).
	UTF8Names bool
	// DisableConsistencyCheck answers 202 to every well-formed push, as the
	// reference does with --push.disable-consistency-check. The check still
	// runs (it is cheap here), so an inconsistent push is dropped and
	// recorded as failed instead of breaking scrapes.
	DisableConsistencyCheck bool
	// MaxBodyBytes bounds the request body as sent; 0 means no limit.
	MaxBodyBytes int64
	// MaxDecompressedBytes bounds the body after decompression; 0 means no limit.
	MaxDecompressedBytes int64
	// MaxInFlight bounds the pushes and deletes handled at once; more are
	// refused at once with 429 instead of queueing. 0 means no limit.
	MaxInFlight int
	// MaxSeriesPerPush stops decoding a body at its first series over the
	// limit (413, with the store's LimitError); 0 means no limit. The store
	// checks the same limit after decoding; checking it here as well keeps
	// an oversized body from being decoded in full first.
	MaxSeriesPerPush int
	// MaxDecodingBytes bounds the estimated heap of all push bodies being
	// decoded at the same time (--push.max-decoding-memory); 0 means no
	// limit. A push that does not fit in what is left is refused with 429,
	// one that alone needs more than the whole bound with 413. With
	// MaxInFlight set, the first freeDecodingBytes of each push are not
	// charged, so small pushes get through while big ones hold the budget.
	MaxDecodingBytes int64
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock of the log throttle; nil means time.Now.
	Now func() time.Time
}

// API serves pushes and deletes.
type API struct {
	store    Store
	opts     Options
	inFlight chan struct{} // a slot per write in progress; nil: unlimited
	decoding *budget       // nil: unlimited
	scheme   model.ValidationScheme
	logger   *slog.Logger
	warns    *logThrottle // of the warnings about refused pushes
	metrics  *metrics
	// arenas holds *textparse.Arena: the messages of a decoded text push
	// are reused by later pushes once the store is done with them, which
	// spares the collector about 40 % of the bytes a push allocates.
	arenas sync.Pool
}

const rejectionsMetric = "pushgate_push_rejections_total"

type metrics struct {
	size       *prometheus.SummaryVec
	duration   *prometheus.SummaryVec
	rejections *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	objectives := map[float64]float64{0.1: 0.01, 0.5: 0.05, 0.9: 0.01}
	m := &metrics{
		size: prometheus.NewSummaryVec(prometheus.SummaryOpts{
			Name:       "pushgateway_http_push_size_bytes",
			Help:       "HTTP request size for pushes to the Pushgateway.",
			Objectives: objectives,
		}, []string{"method"}),
		duration: prometheus.NewSummaryVec(prometheus.SummaryOpts{
			Name:       "pushgateway_http_push_duration_seconds",
			Help:       "HTTP request duration for pushes to the Pushgateway.",
			Objectives: objectives,
		}, []string{"method"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: rejectionsMetric,
			Help: "Pushes and deletes refused, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range reasons {
		m.rejections.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.size, m.duration, m.rejections)
	}
	return m
}

// New returns the push API. Its metrics are registered with reg (nil: none).
func New(s Store, opts Options, reg prometheus.Registerer) *API {
	a := &API{store: s, opts: opts, scheme: model.LegacyValidation, logger: opts.Logger, metrics: newMetrics(reg)}
	if opts.UTF8Names {
		a.scheme = model.UTF8Validation
	}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxInFlight > 0 {
		a.inFlight = make(chan struct{}, opts.MaxInFlight)
	}
	if opts.MaxDecodingBytes > 0 {
		a.decoding = &budget{limit: opts.MaxDecodingBytes}
	}
	a.warns = newLogThrottle(opts.Now)
	return a
}

// admit runs h if a slot for a write is free, and refuses the request
// (429) when all are taken: failing fast keeps a flood of pushes from piling
// up in memory.
func (a *API) admit(h http.HandlerFunc) http.HandlerFunc {
	if a.inFlight == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case a.inFlight <- struct{}{}:
			defer func() { <-a.inFlight }()
			h(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			a.reject(w, r, http.StatusTooManyRequests,
				fmt.Errorf("too many pushes in progress (limit %d, --push.max-concurrent); retry later", a.opts.MaxInFlight),
				"", "push refused: overloaded", reasonOverload)
		}
	}
}

// Push returns the handler for PUT (replace is true) or POST.
func (a *API) Push(replace bool) http.Handler {
	h := promhttp.InstrumentHandlerRequestSize(a.metrics.size,
		promhttp.InstrumentHandlerDuration(a.metrics.duration,
			a.admit(func(w http.ResponseWriter, r *http.Request) { a.push(w, r, replace) })))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := &countingBody{ReadCloser: r.Body}
		// A copy: net/http looks at the original's Body to tell whether
		// the handler left it unread, and then closes the connection
		// gracefully (FIN, a pause, then the close) instead of at once.
		counted := r.WithContext(r.Context())
		counted.Body = body
		// Allow reading the body after answering, for finishBody (HTTP/1
		// otherwise reads what is left before the answer, at most 256 KiB,
		// and drops the connection if there is more).
		_ = http.NewResponseController(w).EnableFullDuplex()
		h.ServeHTTP(w, counted)
		a.finishBody(w, r, body)
	})
}

// drainTimeout bounds how long finishBody reads what is left of a body.
const drainTimeout = 5 * time.Second

// defaultDrainBytes bounds what finishBody reads without --push.max-body-size.
const defaultDrainBytes = 64 << 20

// finishBody reads and discards what is left of the body of a refused push,
// after the answer has been sent, up to --push.max-body-size and for at most
// drainTimeout. Refusals stop reading early, and closing a connection with
// unread data makes the kernel send a reset, which loses the answer for
// clients that send the whole body before they read (Python's http.client,
// and so prometheus_client, among them). A body that is longer than the
// bound is not read at all: net/http then closes the connection after the
// answer, which clients that read while they send still get.
func (a *API) finishBody(w http.ResponseWriter, r *http.Request, body *countingBody) {
	limit := a.opts.MaxBodyBytes
	if limit <= 0 {
		limit = defaultDrainBytes
	}
	if body.eof || r.ContentLength > limit || body.n > limit {
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(drainTimeout))
	_, _ = io.CopyN(io.Discard, body, limit-body.n+1)
}

// countingBody counts what is read of a request body and notes its end.
type countingBody struct {
	io.ReadCloser
	n   int64
	eof bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

// Delete returns the handler for DELETE.
func (a *API) Delete() http.Handler {
	return a.admit(a.delete)
}

// Reserved lists the push API's own metric families for the store's check.
// It is derived from the collectors newMetrics builds, so that a family
// added there is reserved without a second list to keep in step. Their
// vectors have no series until first used, so a private, unregistered copy
// gets one series each and is gathered.
func Reserved() []store.Reserved {
	m := newMetrics(nil)
	for _, method := range []string{"put", "post"} {
		m.size.WithLabelValues(method)
		m.duration.WithLabelValues(method)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.size, m.duration, m.rejections)
	reserved, err := store.ReservedFrom(reg)
	if err != nil {
		// Our own collectors, just built: a failure is a programming error.
		panic(fmt.Sprintf("gather the push API's own metrics: %v", err))
	}
	return reserved
}

// groupingKey is the one place that turns a request into a grouping key.
func (a *API) groupingKey(r *http.Request) (grouping.Key, error) {
	// The decoded path, as the reference's router sees it: a "%2F" in a
	// value separates components (use @base64 for such values).
	rest, ok := strings.CutPrefix(r.URL.Path, "/metrics/")
	if !ok {
		return grouping.Key{}, errors.New("push path must start with /metrics/")
	}
	return grouping.ParsePath(rest, grouping.Options{UTF8Names: a.opts.UTF8Names})
}

func (a *API) push(w http.ResponseWriter, r *http.Request, replace bool) {
	key, err := a.groupingKey(r)
	if err != nil {
		a.reject(w, r, http.StatusBadRequest, err, "", "invalid push URL", reasonURL)
		return
	}
	expireAfter, err := parseExpireAfter(r.Header.Get(ExpireHeader))
	if err != nil {
		a.reject(w, r, http.StatusBadRequest, err, key.String(), "invalid push header", reasonHeader)
		return
	}
	if limit := a.opts.MaxBodyBytes; limit > 0 && r.ContentLength > limit {
		err := fmt.Errorf("request body of %d bytes exceeds the limit of %d bytes (--push.max-body-size)", r.ContentLength, limit)
		a.reject(w, r, http.StatusRequestEntityTooLarge, err, key.String(), "invalid push body", reasonTooLarge)
		return
	}
	m := &meter{budget: a.decoding, maxSeries: a.opts.MaxSeriesPerPush}
	if a.inFlight != nil {
		m.free = freeDecodingBytes
	}
	// The decoded families stay reachable until the store is done with them.
	defer m.release()
	arena, _ := a.arenas.Get().(*textparse.Arena)
	if arena == nil {
		arena = &textparse.Arena{}
	}
	// After the store has returned: see Store.
	defer func() {
		arena.Reset()
		a.arenas.Put(arena)
	}()
	fams, err := a.readBody(w, r, m.charge, arena)
	decoded := err == nil
	if decoded {
		err = a.store.PushExpiring(key, fams, replace, expireAfter)
	}
	var limitErr *store.LimitError
	var budgetErr *budgetError
	var maxBytes *http.MaxBytesError
	var tooLarge errTooLarge
	switch {
	case err == nil && a.opts.DisableConsistencyCheck:
		w.WriteHeader(http.StatusAccepted)
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.As(err, &limitErr):
		// From the decoder's meter or the store: the same limits.
		a.reject(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("%w (%s)", err, limitFlag(limitErr.Kind)), key.String(), "push over limit", reasonLimit)
	case errors.As(err, &budgetErr) && budgetErr.alone:
		a.reject(w, r, http.StatusRequestEntityTooLarge, err, key.String(), "push over limit", reasonTooLarge)
	case errors.As(err, &budgetErr):
		w.Header().Set("Retry-After", "1")
		a.reject(w, r, http.StatusTooManyRequests, err, key.String(), "push refused: overloaded", reasonOverload)
	case errors.As(err, &maxBytes):
		err = errors.New("request body exceeds the limit of " + strconv.FormatInt(maxBytes.Limit, 10) + " bytes (--push.max-body-size)")
		a.reject(w, r, http.StatusRequestEntityTooLarge, err, key.String(), "invalid push body", reasonTooLarge)
	case errors.As(err, &tooLarge):
		a.reject(w, r, http.StatusRequestEntityTooLarge, err, key.String(), "invalid push body", reasonTooLarge)
	case !decoded:
		a.reject(w, r, http.StatusBadRequest, err, key.String(), "invalid push body", reasonBody)
	case errors.Is(err, store.ErrInvalid) && a.opts.DisableConsistencyCheck:
		a.logRefusal(r.Context(), slog.LevelWarn, "push dropped: invalid or inconsistent",
			"remote_addr", r.RemoteAddr, "method", r.Method, "grouping_key", key.String(), "err", err)
		w.WriteHeader(http.StatusAccepted)
	case errors.Is(err, store.ErrInvalid):
		a.reject(w, r, http.StatusBadRequest, err, key.String(), "push rejected", reasonInconsistent)
	case errors.Is(err, store.ErrStorage):
		// Nothing was changed; the client may retry.
		a.reject(w, r, http.StatusServiceUnavailable, err, key.String(), "push not stored", reasonStorage)
	default:
		a.reject(w, r, http.StatusInternalServerError, err, key.String(), "push failed", reasonInternal)
	}
}

// readBody decompresses and decodes the body within the size limits,
// calling charge as the decoded result grows.
func (a *API) readBody(w http.ResponseWriter, r *http.Request, charge chargeFunc, arena *textparse.Arena) (map[string]*dto.MetricFamily, error) {
	body := r.Body
	if a.opts.MaxBodyBytes > 0 {
		body = http.MaxBytesReader(w, body, a.opts.MaxBodyBytes)
	}
	decoded, done, err := decompress(r, body)
	if err != nil {
		return nil, err
	}
	defer done()
	if a.opts.MaxDecompressedBytes > 0 {
		decoded = &limitedReader{r: decoded, n: a.opts.MaxDecompressedBytes, limit: a.opts.MaxDecompressedBytes}
	}
	return decodeBody(r.Header.Get("Content-Type"), decoded, a.scheme, charge, arena)
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) {
	key, err := a.groupingKey(r)
	if err != nil {
		a.reject(w, r, http.StatusBadRequest, err, "", "invalid delete URL", reasonURL)
		return
	}
	if err := a.store.Delete(key); err != nil {
		a.reject(w, r, http.StatusServiceUnavailable, err, key.String(), "delete not stored", reasonStorage)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// limitFlag names the flag that sets a limit, so the client learns which
// one it hit.
func limitFlag(k store.LimitKind) string {
	switch k {
	case store.SeriesPerPush:
		return "--push.max-series-per-push"
	case store.TotalGroups:
		return "--storage.max-groups"
	case store.LabelsPerSeries:
		return "--push.max-labels-per-series"
	case store.LabelNameLength:
		return "--push.max-label-name-length"
	case store.LabelValueLength:
		return "--push.max-label-value-length"
	case store.StoredBytes:
		return "--storage.etcd.max-request-bytes"
	default:
		return "--storage.max-series"
	}
}

// Reasons for refusing a write, the label of pushgate_push_rejections_total.
const (
	reasonURL          = "invalid_url"
	reasonHeader       = "invalid_header"
	reasonBody         = "invalid_body"
	reasonTooLarge     = "too_large"
	reasonLimit        = "limit"
	reasonInconsistent = "invalid_or_inconsistent"
	reasonStorage      = "storage"
	reasonOverload     = "overload"
	reasonInternal     = "internal"
)

var reasons = []string{reasonURL, reasonHeader, reasonBody, reasonTooLarge, reasonLimit, reasonInconsistent, reasonStorage, reasonOverload, reasonInternal}

// reject answers with a one-line reason, counts it and logs who sent what.
// Warnings are throttled, since a client may make every request fail; the
// metric counts them all.
func (a *API) reject(w http.ResponseWriter, r *http.Request, status int, err error, key, msg, reason string) {
	a.metrics.rejections.WithLabelValues(reason).Inc()
	level := slog.LevelDebug
	// Under overload every refused push would log: those stay at debug
	// (they are counted in the metric).
	if status != http.StatusTooManyRequests && (status != http.StatusBadRequest || errors.Is(err, store.ErrInvalid)) {
		// Malformed requests are the client's business (debug, like the
		// reference); rejected and failed pushes are the operator's.
		level = slog.LevelWarn
	}
	a.logRefusal(r.Context(), level, msg,
		"remote_addr", r.RemoteAddr, "method", r.Method, "path", r.URL.Path,
		"grouping_key", key, "status", status, "err", err)
	writeError(w, status, oneLine(err.Error()))
}

// writeError answers like http.Error, but with a Content-Length: the
// answer to a refused push is flushed before the rest of the body is read
// (finishBody), and without a length the client could only tell its end
// once the handler returns.
func writeError(w http.ResponseWriter, status int, msg string) {
	msg += "\n"
	h := w.Header()
	h.Del("Content-Encoding")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}

// logRefusal logs a refused or dropped push. Warnings pass the throttle:
// those it holds back are logged at debug, and the next warning let through
// is preceded by how many there were.
func (a *API) logRefusal(ctx context.Context, level slog.Level, msg string, args ...any) {
	if level >= slog.LevelWarn {
		ok, suppressed := a.warns.allow()
		if suppressed > 0 {
			a.logger.Warn("similar lines suppressed", "suppressed_lines", suppressed)
		}
		if !ok {
			level = slog.LevelDebug
		}
	}
	a.logger.Log(ctx, level, msg, args...)
}

// oneLine keeps a response body to one line: parser errors can quote input.
func oneLine(s string) string {
	return strings.ReplaceAll(s, "\n", `\n`)
}

// ExpireHeader sets the expiry of the pushed group (README, Group expiry):
// a Go duration such as "90s" or "26h"; "0" means never. Without it the
// group falls back to --push.expire-after.
const ExpireHeader = "Pushgate-Expire-After"

// parseExpireAfter parses an ExpireHeader value ("" when absent) into the
// group expiry the store takes.
func parseExpireAfter(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("invalid %s header %q: want a duration such as 90s or 26h, or 0 for never", ExpireHeader, v)
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("invalid %s header %q: must not be negative", ExpireHeader, v)
	case d == 0:
		return store.NeverExpire, nil
	}
	return d, nil
}
