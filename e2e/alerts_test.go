package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// groupDownAlert is the alert of contrib/prometheus/alerts.yml for a group
// that is not pushed as its rule expects.
const groupDownAlert = "PushgateGroupDown"

// forLine matches the "for:" value of an alerting rule in alerts.yml.
var forLine = regexp.MustCompile(`(?m)^(\s+for:\s*)\S+[ \t]*$`)

// TestAlertGroupDown loads the shipped alerts into a real Prometheus that
// scrapes pushgate with honor_labels: true, and checks that PushgateGroupDown
// stays quiet while a group with expect_every: 1s is pushed, and fires
// with the group's labels once its pushes stop (while a group that goes on
// pushing stays quiet).
//
// The shipped rule waits "for: 5m" before firing, too long for a test, so
// the test loads a copy whose "for:" values alone are rewritten to 0s: the
// expressions, labels and annotations it checks are the shipped ones.
func TestAlertGroupDown(t *testing.T) {
	t.Parallel()
	requirePushgate(t, "--push.rules.file")
	requireBinary(t, prometheusBin)

	dir := t.TempDir()
	shipped, err := os.ReadFile("../contrib/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(forLine.FindAll(shipped, -1)); n == 0 {
		t.Fatal("no for: line found in alerts.yml; the rewrite below no longer applies")
	}
	alertsFile := filepath.Join(dir, "alerts.yml")
	writeFile(t, alertsFile, forLine.ReplaceAll(shipped, []byte("${1}0s")))
	rulesFile := filepath.Join(dir, "rules.yml")
	writeFile(t, rulesFile, []byte(`rules:
  - match: '{job="e2e-alert"}'
    expect_every: 1s
`))

	g := startGateway(t, subject, "--storage.in-memory", "--push.rules.file="+rulesFile)
	promAddr, prom := startPrometheus(t, g, dir, "1s", alertsFile)

	push := func(instance string) {
		t.Helper()
		path := "/metrics/job/e2e-alert/instance/" + instance
		if r := g.do(t, http.MethodPut, path, nil, []byte("# TYPE e2e_done gauge\ne2e_done 1\n")); r.status != http.StatusOK {
			t.Fatalf("PUT %s: %s", path, r)
		}
	}
	// groupDown returns the labels of the alert in state (firing or
	// pending) by instance of job e2e-alert.
	groupDown := func(state string) (map[string]map[string]string, error) {
		series, err := promQuery(promAddr, fmt.Sprintf(`ALERTS{alertname=%q, alertstate=%q, job="e2e-alert"}`, groupDownAlert, state))
		if err != nil {
			return nil, err
		}
		out := map[string]map[string]string{}
		for _, s := range series {
			out[s.Metric["instance"]] = s.Metric
		}
		return out, nil
	}
	deadline := time.Now().Add(25 * time.Second)
	tick := func(step, last string) {
		t.Helper()
		if prom.exited() {
			t.Fatalf("%s: prometheus exited early", step)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out; last answer: %s", step, last)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Fresh pushes: pushgate_group_up reaches Prometheus as 1 for both
	// groups, and the alert stays quiet through evaluations that saw it.
	var seenUp time.Time
	for {
		push("host-a")
		push("host-b")
		for _, state := range []string{"pending", "firing"} {
			down, err := groupDown(state)
			if err != nil && !seenUp.IsZero() {
				// Prometheus answered before: the quiet phase must be
				// checked, not skipped.
				t.Fatalf("query %s %s: %v", groupDownAlert, state, err)
			}
			if len(down) > 0 {
				t.Fatalf("%s is %s while the groups are pushed every 200ms: %v", groupDownAlert, state, down)
			}
		}
		up, err := promQuery(promAddr, `pushgate_group_up{job="e2e-alert"} == 1`)
		if seenUp.IsZero() && err == nil && len(up) == 2 {
			seenUp = time.Now()
		}
		if !seenUp.IsZero() {
			eval, err := ruleLastEvaluation(promAddr, groupDownAlert)
			if err != nil {
				t.Fatal(err)
			}
			if eval.After(seenUp.Add(2 * time.Second)) {
				break
			}
		}
		tick("waiting for evaluations of fresh groups", fmt.Sprintf("pushgate_group_up: %v, %v", up, err))
	}

	// host-a stops pushing: once its last push is over 1s old, the gauge
	// goes to 0 and the alert fires with its labels; host-b goes on.
	var last string
	for {
		push("host-b")
		down, err := groupDown("firing")
		if err == nil {
			if _, ok := down["host-b"]; ok {
				t.Fatalf("%s fires for host-b, which is still pushed: %v", groupDownAlert, down)
			}
			if a, ok := down["host-a"]; ok {
				if a["severity"] != "warning" {
					t.Errorf("alert labels %v, want severity=\"warning\" as shipped", a)
				}
				return
			}
			last = fmt.Sprint(down)
		} else {
			last = err.Error()
		}
		tick("waiting for the alert on host-a", last)
	}
}

// ruleLastEvaluation returns when Prometheus last evaluated the alerting
// rule name (zero before the first evaluation), and fails if the rule is
// not loaded or not healthy.
func ruleLastEvaluation(addr, name string) (time.Time, error) {
	resp, err := http.Get("http://" + addr + "/api/v1/rules?type=alert")
	if err != nil {
		return time.Time{}, err
	}
	r, err := readAll(resp)
	if err != nil {
		return time.Time{}, err
	}
	if r.status != http.StatusOK {
		return time.Time{}, fmt.Errorf("rules: %s", r)
	}
	var v struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name           string    `json:"name"`
					Health         string    `json:"health"`
					LastError      string    `json:"lastError"`
					LastEvaluation time.Time `json:"lastEvaluation"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		return time.Time{}, fmt.Errorf("rules: %w", err)
	}
	for _, g := range v.Data.Groups {
		for _, rule := range g.Rules {
			if rule.Name != name {
				continue
			}
			if rule.Health == "err" {
				return time.Time{}, fmt.Errorf("rule %s: %s", name, rule.LastError)
			}
			return rule.LastEvaluation, nil
		}
	}
	return time.Time{}, fmt.Errorf("rule %s is not loaded (rule_files)", name)
}
