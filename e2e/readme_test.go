package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeSkip, on the line before a fence, keeps an sh block of the README
// from being run by TestREADMEExamples (for blocks that build or start a
// gateway themselves).
const readmeSkip = "<!-- readme-test: skip"

// shBlock is a fenced sh block of the README.
type shBlock struct {
	line int // of the opening fence
	code string
}

// readmeBlocks returns the README's ```sh blocks that are not marked with
// readmeSkip, in order.
func readmeBlocks(t *testing.T, path string) []shBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks  []shBlock
		cur     *shBlock
		skip    bool
		prev    string
		lineNum int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lineNum++
		l := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			lang := strings.Fields(strings.TrimPrefix(l, "```"))
			if len(lang) > 0 && (lang[0] == "sh" || lang[0] == "bash") {
				cur = &shBlock{line: lineNum}
				skip = strings.HasPrefix(strings.TrimSpace(prev), readmeSkip)
			} else {
				cur = &shBlock{line: -1} // another language: not run
			}
		case cur != nil && strings.TrimSpace(l) == "```":
			if cur.line > 0 && !skip {
				blocks = append(blocks, *cur)
			}
			cur = nil
		case cur != nil:
			cur.code += l + "\n"
		}
		prev = l
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: unterminated code block", path)
	}
	return blocks
}

// makeCommand matches a block that would build or start a gateway itself.
var makeCommand = regexp.MustCompile(`(^|[;&|\s])make\s`)

// TestREADMEExamples runs the README's sh examples, in order, with bash
// against one fresh gateway on a random port (localhost:9091 rewritten). Any
// failing command fails the test: the script runs with -e and pipefail, and
// curl fails on an HTTP error status.
func TestREADMEExamples(t *testing.T) {
	t.Parallel()
	requireBinary(t, "/bin/bash")
	requireBinary(t, "/usr/bin/curl")
	blocks := readmeBlocks(t, "../README.md")
	if len(blocks) == 0 {
		t.Fatal("README.md has no sh block to run")
	}
	g := startGateway(t, subject)

	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	// Every curl fails on an HTTP error, printing the gateway's reason.
	script.WriteString("curl() { command curl --silent --show-error --fail-with-body \"$@\"; }\n")
	for _, b := range blocks {
		if makeCommand.MatchString(b.code) {
			t.Fatalf("README.md:%d: the sh block runs make; mark it with %q on the line before", b.line, readmeSkip+" (why) -->")
		}
		fmt.Fprintf(&script, "echo '--- README.md:%d' >&2\n", b.line)
		script.WriteString(strings.ReplaceAll(b.code, "localhost:9091", g.addr))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/bash", "-c", script.String())
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README examples failed: %v\noutput (--- marks the block that runs):\n%s\nscript:\n%s", err, out, script.String())
	}
	t.Logf("output:\n%s", out)
}
