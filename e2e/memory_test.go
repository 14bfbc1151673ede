package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Hostile push bodies must not take the gateway's memory: the peak resident
// size (VmHWM) of the real binary is read from /proc while it is attacked,
// and a background loop of scrapes and small pushes must keep getting 200.
//
// Before the decoding limits, the first attack took the gateway to about
// 1.3 GiB and the second to 12.8 GiB.

const (
	// defaultMaxBody is the default of --push.max-body-size.
	defaultMaxBody = 64 << 20
	// attackTimeout bounds each hostile request.
	attackTimeout = 60 * time.Second
)

func TestMemoryGzipBombThenHugeBody(t *testing.T) {
	requirePushgate(t, "bounded decoding memory")
	g := startGateway(t, subject, "--storage.in-memory")
	bg := startBackground(t, g)

	bomb := gzipBomb(t, 1<<30)
	// 10 MB on the wire, more than the socket buffers hold: a server that
	// stops reading makes the kernel reset the connection.
	bigBomb := gzipBomb(t, 8<<30)
	tests := []struct {
		name    string
		header  map[string]string
		body    func() io.Reader
		length  int64 // -1: chunked
		rawSend bool  // send the whole body before reading, as Python's http.client
	}{
		{"gzip bomb of zeros", map[string]string{"Content-Encoding": "gzip"}, bomb.reader, -1, false},
		{"gzip bomb of zeros, sent whole before reading", map[string]string{"Content-Encoding": "gzip"}, bigBomb.reader, bigBomb.size, true},
		{"gzip bomb of zeros as protobuf", map[string]string{"Content-Encoding": "gzip", "Content-Type": protoDelimCT}, bomb.reader, -1, false},
		{"300 MB of short series, chunked", nil, func() io.Reader { return newSeriesBody("plain", 300e6) }, -1, false},
		{"300 MB of short series", nil, func() io.Reader { return newSeriesBody("plain", 300e6) }, 300e6, false},
	}
	for _, tt := range tests {
		var status int
		var err error
		if tt.rawSend {
			status, err = sendWholeThenRead(g, "/metrics/job/bomb", tt.header, tt.body(), tt.length)
		} else {
			status, err = attack(g, "/metrics/job/bomb", tt.header, tt.body(), tt.length)
		}
		if err != nil || status < 400 || status > 499 {
			t.Errorf("%s: status %d, error %v; want a 4xx answer", tt.name, status, err)
		}
	}
	bg.stop(t)
	checkPeakRSS(t, g, 256<<20)
	assertNoGroup(t, g, "bomb")
}

func TestMemoryConcurrentMaximumBodies(t *testing.T) {
	requirePushgate(t, "bounded decoding memory")
	g := startGateway(t, subject, "--storage.in-memory")
	bg := startBackground(t, g)

	const clients = 16
	const size = defaultMaxBody - 4096 // just under --push.max-body-size
	var wg sync.WaitGroup
	statuses := make([]int, clients)
	errs := make([]error, clients)
	for i := range clients {
		wg.Go(func() {
			statuses[i], errs[i] = attack(g, "/metrics/job/big/instance/"+strconv.Itoa(i), nil, newSeriesBody("big", size), size)
		})
	}
	wg.Wait()
	counts := map[int]int{}
	for i := range clients {
		counts[statuses[i]]++
		if errs[i] != nil || (statuses[i] != http.StatusRequestEntityTooLarge && statuses[i] != http.StatusTooManyRequests) {
			t.Errorf("client %d: status %d, error %v; want 413 or 429", i, statuses[i], errs[i])
		}
	}
	t.Logf("answers: %v", counts)
	bg.stop(t)
	checkPeakRSS(t, g, 512<<20)
	assertNoGroup(t, g, "big")
}

// TestMemoryLargestOrdinaryPushAccepted checks that the default decoding
// budget lets through, alone, a push at the default limits: a text body
// just under --push.max-body-size of --push.max-series-per-push series
// with five labels each.
func TestMemoryLargestOrdinaryPushAccepted(t *testing.T) {
	requirePushgate(t, "bounded decoding memory")
	g := startGateway(t, subject, "--storage.in-memory")
	const series = 100_000
	const size = defaultMaxBody - 4096
	line := func(i int, pad int) string {
		return fmt.Sprintf("ordinary{a=\"%s\",b=\"x\",c=\"y\",d=\"z\",i=\"%06d\"} 1\n", strings.Repeat("v", pad), i)
	}
	pad := (size/series - len(line(0, 0)))
	var body bytes.Buffer
	for i := range series {
		body.WriteString(line(i, pad))
	}
	body.WriteString("#" + strings.Repeat(" ", size-body.Len()-2) + "\n")
	status, err := attack(g, "/metrics/job/ordinary", nil, &body, size)
	if err != nil || status != http.StatusOK {
		t.Fatalf("status %d, error %v; want 200", status, err)
	}
	t.Logf("peak RSS %d MiB", peakRSS(t, g)>>20)
}

// checkPeakRSS fails the test if the gateway's peak RSS went over limit, and
// logs it otherwise.
func checkPeakRSS(t *testing.T, g *gateway, limit int64) {
	t.Helper()
	if hwm := peakRSS(t, g); hwm > limit {
		t.Errorf("peak RSS %d MiB, want at most %d MiB", hwm>>20, limit>>20)
	} else {
		t.Logf("peak RSS %d MiB", hwm>>20)
	}
}

// peakRSS reads VmHWM of the gateway's process.
func peakRSS(t *testing.T, g *gateway) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read the gateway's peak memory: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", g.cmd.Process.Pid)
	return 0
}

// assertNoGroup checks that no refused push left a group behind.
func assertNoGroup(t *testing.T, g *gateway, job string) {
	t.Helper()
	for _, mf := range g.scrape(t) {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "job" && l.GetValue() == job {
					t.Fatalf("a refused push left a group: %s%v", mf.GetName(), m.Label)
				}
			}
		}
	}
}

// background scrapes and pushes small bodies in a loop while an attack
// runs; every answer must be 200.
type background struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex // guards the fields below
	ok     int
	failed []string
}

func startBackground(t *testing.T, g *gateway) *background {
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for i := 0; i < 100_000 && ctx.Err() == nil; i++ {
			var r response
			var err error
			if i%2 == 0 {
				r, err = g.tryDo(http.MethodGet, g.prefix+"/metrics", nil, nil)
			} else {
				body := fmt.Sprintf("background_pushes{n=\"%d\"} %d\nbackground_ok 1\n", i%3, i)
				r, err = g.tryDo(http.MethodPut, g.prefix+"/metrics/job/background", nil, []byte(body))
			}
			b.mu.Lock()
			if err == nil && r.status == http.StatusOK {
				b.ok++
			} else if len(b.failed) < 10 {
				b.failed = append(b.failed, fmt.Sprintf("request %d: %v %s", i, err, r))
			}
			b.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(b.cancel)
	return b
}

func (b *background) stop(t *testing.T) {
	t.Helper()
	// An attack can end within a second or two, before a loaded machine
	// (CI runs the other packages meanwhile) has answered ten background
	// requests: give them a little longer, failures still count.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b.mu.Lock()
		enough := b.ok >= 10 || len(b.failed) > 0
		b.mu.Unlock()
		if enough {
			break
		}
	}
	b.cancel()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.failed) > 0 {
		t.Errorf("background scrapes and pushes failed during the attack: %q", b.failed)
	}
	if b.ok < 10 {
		t.Errorf("only %d background requests succeeded", b.ok)
	}
}

// attack sends a hostile push with a client that reads the answer while it
// sends, and stops sending once answered.
func attack(g *gateway, path string, header map[string]string, body io.Reader, length int64) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), attackTimeout)
	defer cancel()
	sb := &stoppableBody{r: body}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+g.addr+g.prefix+path, sb)
	if err != nil {
		return 0, err
	}
	req.ContentLength = length
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	sb.stop()
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// stoppableBody ends the request body (with an error: the request is
// abandoned) once the answer has arrived.
type stoppableBody struct {
	r       io.Reader
	stopped atomic.Bool
}

var errAnswered = errors.New("answered; stop sending")

func (s *stoppableBody) Read(p []byte) (int, error) {
	if s.stopped.Load() {
		return 0, errAnswered
	}
	return s.r.Read(p)
}

func (s *stoppableBody) stop() { s.stopped.Store(true) }

// sendWholeThenRead sends a request and its whole body before it reads the
// answer, over a raw connection, as Python's http.client does.
func sendWholeThenRead(g *gateway, path string, header map[string]string, body io.Reader, length int64) (int, error) {
	conn, err := net.Dial("tcp", g.addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(attackTimeout))
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "PUT %s%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", g.prefix, path, g.addr, length)
	for k, v := range header {
		fmt.Fprintf(w, "%s: %s\r\n", k, v)
	}
	fmt.Fprintf(w, "\r\n")
	if _, err := io.Copy(w, body); err != nil {
		return 0, fmt.Errorf("send the body: %w", err)
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("send the body: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, fmt.Errorf("read the answer: %w", err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil
}

// bomb is a gzip stream of zero bytes: one gzip member of 1 MiB of zeros,
// repeated (a multi-member stream decompresses to their concatenation).
type bomb struct {
	member []byte
	count  int
	size   int64
}

func gzipBomb(t *testing.T, decompressed int) bomb {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // 1.3 MB for 1 GiB
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	n := decompressed >> 20
	return bomb{member: buf.Bytes(), count: n, size: int64(n * buf.Len())}
}

func (b bomb) reader() io.Reader {
	readers := make([]io.Reader, b.count)
	for i := range readers {
		readers[i] = bytes.NewReader(b.member)
	}
	return io.MultiReader(readers...)
}

// seriesBody generates a text body of short series, `<name>{i="N"} 1`, of
// exactly size bytes (padded with a comment line), without holding it.
type seriesBody struct {
	name string
	left int64
	i    int
	buf  []byte
}

func newSeriesBody(name string, size int64) *seriesBody {
	return &seriesBody{name: name, left: size}
}

func (s *seriesBody) Read(p []byte) (int, error) {
	for len(s.buf) < len(p) && s.left > 0 {
		start := len(s.buf)
		s.buf = append(s.buf, s.name...)
		s.buf = append(s.buf, `{i="`...)
		s.buf = strconv.AppendInt(s.buf, int64(s.i), 10)
		s.buf = append(s.buf, "\"} 1\n"...)
		s.i++
		n := int64(len(s.buf) - start)
		if n > s.left || n == s.left-1 { // the end: pad with a comment line
			s.buf = s.buf[:start]
			if s.left > 1 {
				s.buf = append(s.buf, '#')
				s.buf = append(s.buf, bytes.Repeat([]byte{' '}, int(s.left)-2)...)
			}
			s.buf = append(s.buf, '\n')
			n = s.left
		}
		s.left -= n
	}
	if len(s.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}
