package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput: bad flags and bad config files end with exit 2 and one line on stderr
// naming the flag, file, key or value, before any AWS call (the endpoint points nowhere).
func TestBadInput(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9") // nothing listens: any AWS call would fail, not exit 2
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknownKey := write("unknown.yaml", "policies:\n  - name: daily\n    retain: {max_age: 30d}\n    colour: blue\n")
	unknownTop := write("top.yaml", "regoins: [us-east-1]\n")
	badDuration := write("duration.yaml", "policies:\n  - name: daily\n    every: fortnightly\n    retain: {max_age: 30d}\n")
	dupPolicy := write("dup.yaml", "policies:\n  - name: daily\n    retain: {max_age: 30d}\n  - name: daily\n    retain: {keep_last: 3}\n")
	noRule := write("norule.yaml", "policies:\n  - name: daily\n    retain: {min_keep: 2}\n")
	noPolicies := write("nopolicies.yaml", "policies: []\n")
	nanFraction := write("nan.yaml", "max_delete_fraction: .nan\n")
	q := "file:" + filepath.Join(dir, "q.db")

	tests := []struct {
		name string
		args []string
		want []string // substrings of the one stderr line
	}{
		{"unknown config key", []string{"plan", "--dry-run", "--config", unknownKey}, []string{unknownKey, "line 4: policies[0].colour: unknown key"}},
		{"unknown top-level key", []string{"plan", "--dry-run", "--config", unknownTop}, []string{unknownTop, "line 1: regoins: unknown key"}},
		{"bad duration", []string{"plan", "--dry-run", "--config", badDuration}, []string{badDuration, `line 3: policies[0].every: bad duration "fortnightly"`}},
		{"duplicate policy", []string{"run", "--queue", q, "--config", dupPolicy}, []string{dupPolicy, "duplicate policy name", "daily"}},
		{"no keep rule", []string{"work", "--queue", q, "--config", noRule}, []string{noRule, "retain"}},
		{"empty policies", []string{"run", "--queue", q, "--config", noPolicies}, []string{noPolicies, "policies: no policies"}},
		{"NaN max_delete_fraction", []string{"plan", "--dry-run", "--config", nanFraction}, []string{nanFraction, "max_delete_fraction", "NaN"}},
		{"work queue in a missing directory", []string{"work", "--queue", "file:/no-such-dir/q.db"}, []string{"--queue", "file:/no-such-dir/q.db", "does not exist"}},
		{"plan queue in a missing directory", []string{"plan", "--queue", "file:/no-such-dir/q.db"}, []string{"--queue", "file:/no-such-dir/q.db", "does not exist"}},
		{"run queue in a missing directory", []string{"run", "--queue", "file:/no-such-dir/q.db"}, []string{"--queue", "file:/no-such-dir/q.db", "does not exist"}},
		{"missing config", []string{"plan", "--dry-run", "--config", filepath.Join(dir, "nope.yaml")}, []string{"nope.yaml"}},
		{"bad --now", []string{"plan", "--dry-run", "--now", "yesterday"}, []string{"--now", "yesterday"}},
		// Issue 12.5: an empty --now is not the real clock, and the far ends of RFC 3339 are refused.
		{"empty --now=", []string{"plan", "--dry-run", "--now="}, []string{"--now", `""`, "empty"}},
		{"empty --now", []string{"work", "--queue", q, "--now", ""}, []string{"--now", `""`, "empty"}},
		{"--now year 9999", []string{"work", "--queue", q, "--now", "9999-12-31T23:59:59Z"}, []string{"--now", "9999-12-31T23:59:59Z", "outside 2006-01-01T00:00:00Z … 2200-01-01T00:00:00Z"}},
		{"--now year 0", []string{"run", "--queue", q, "--now", "0000-01-01T00:00:00Z"}, []string{"--now", "0000-01-01T00:00:00Z", "outside"}},
		{"--now before 2006", []string{"plan", "--queue", q, "--now", "1999-12-31T23:59:59Z"}, []string{"--now", "1999-12-31T23:59:59Z", "outside"}},
		{"bad --output", []string{"plan", "--dry-run", "--output", "xml"}, []string{"--output", "xml"}},
		{"bad --queue", []string{"work", "--queue", "amqp://x"}, []string{"--queue", "amqp://x"}},
		{"plan bad --queue", []string{"plan", "--queue", "ftp://x"}, []string{"--queue", `"ftp://x"`}},
		{"plan --dry-run bad --queue", []string{"plan", "--dry-run", "--queue", "ftp://x"}, []string{"--queue", `"ftp://x"`}},
		{"plan SQS URL without a queue name", []string{"plan", "--queue", "https://sqs.us-east-1.amazonaws.com/123456789012"}, []string{"--queue", "ACCOUNT/NAME"}},
		{"run bad --queue", []string{"run", "--queue", "ftp://x"}, []string{"--queue", `"ftp://x"`}},
		{"run --dry-run bad --queue", []string{"run", "--dry-run", "--queue", "file:"}, []string{"--queue", "needs a path"}},
		{"plan without queue", []string{"plan"}, []string{"--queue"}},
		{"plan --check-shares without --dry-run", []string{"plan", "--queue", q, "--check-shares"}, []string{"plan", "--check-shares needs --dry-run"}},
		{"run --check-shares without --dry-run", []string{"run", "--queue", q, "--check-shares"}, []string{"run", "--check-shares needs --dry-run"}},
		{"plan --check-shares with --event", []string{"plan", "--dry-run", "--check-shares", "--event", filepath.Join(dir, "ev.json")}, []string{"--check-shares", "--event"}},
		{"unknown flag", []string{"work", "--queue", q, "--turbo"}, []string{"--turbo"}},
		{"bad concurrency", []string{"work", "--queue", q, "--concurrency", "0"}, []string{"--concurrency"}},
		{"bad health-addr", []string{"work", "--queue", q, "--health-addr", "8080"}, []string{"--health-addr", "8080"}},
		{"bad idle-exit", []string{"work", "--queue", q, "--idle-exit", "soon"}, []string{"idle-exit", "soon"}},
		{"stray argument", []string{"plan", "--dry-run", "extra"}, []string{"extra"}},
		{"unknown command", []string{"backup"}, []string{"backup"}},
		{"config check unknown key", []string{"config", "check", "--config", unknownKey}, []string{unknownKey, "line 4: policies[0].colour: unknown key"}},
		{"config check bad value", []string{"config", "check", "--config", badDuration}, []string{badDuration, "policies[0].every", "fortnightly"}},
		{"config check invalid policy", []string{"config", "check", "--config", noRule}, []string{noRule, "policies[daily].retain: no keep rule"}},
		{"config check without --config", []string{"config", "check"}, []string{"--config"}},
		{"config check stray argument", []string{"config", "check", "extra"}, []string{"extra"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := execute(context.Background(), tc.args, &out, &errb)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, errb.String())
			}
			msg := errb.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") {
				t.Errorf("stderr is not one line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr %q does not name %q", msg, w)
				}
			}
			if strings.Contains(msg, "in type") || strings.Contains(msg, "config.") {
				t.Errorf("stderr %q shows a Go type", msg)
			}
			if out.Len() != 0 {
				t.Errorf("stdout not empty: %q", out.String())
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "q.db")); !os.IsNotExist(err) {
		t.Errorf("a failed command created the queue file: %v", err)
	}
}
