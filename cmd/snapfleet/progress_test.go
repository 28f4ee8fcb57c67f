package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/planner"
	"github.com/snapfleet/snapfleet/worker"
)

// ansi matches the escape sequences of the display.
var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// onTerminal runs snapfleet with stderr on a pseudo-terminal and stdout on a pipe, and
// returns stdout, what the terminal received and the exit code.
func (e *e2e) onTerminal(args ...string) (stdout, term string, code int) {
	t := e.t
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cmd.Environ(), append(e.moto.Env(), e.env...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	read := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO once the process's side is closed
		read <- b
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	select {
	case b := <-read:
		term = string(b)
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal's output did not end")
	}
	return out.String(), term, code
}

// finalDisplay is the display as the terminal last showed it: the text from the last
// line starting with prefix, escape sequences removed, carriage returns as line ends.
func finalDisplay(t *testing.T, term, prefix string) []string {
	t.Helper()
	plain := strings.ReplaceAll(ansi.ReplaceAllString(term, ""), "\r", "\n")
	i := strings.LastIndex(plain, "\n"+prefix)
	if i < 0 {
		t.Fatalf("no %q line on the terminal:\n%s", prefix, tail(plain))
	}
	var lines []string
	for _, l := range strings.Split(plain[i+1:], "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestProgressOnTerminal: with stderr on a terminal, run, work --idle-exit and dlq replay
// draw a live display — redrawn in place as the logs scroll above it — that ends at the
// final counts, per account-region too; stdout stays exactly one JSON object.
func TestProgressOnTerminal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.instancesWithData(ctx, 2, nil) // 4 volumes
	db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")
	now := e.at(0)

	stdout, term, code := e.onTerminal("run", "--queue", db, "--now", now, "--allow-clock-skew", "--config", e.config, "--output", "json")
	var res runResult
	if err := json.Unmarshal([]byte(stdout), &res); code != 0 || err != nil || res.Work.Created != 4 {
		t.Fatalf("run: exit %d, stdout %q (%v)\n%s", code, stdout, err, tail(term))
	}
	got := finalDisplay(t, term, "run: ")
	if len(got) != 2 || !strings.HasPrefix(got[0], "run: 4/4 done, 0 deferred, 0 dead-lettered") || !strings.HasSuffix(got[0], "ETA 0s") ||
		!regexp.MustCompile(`^`+motoAccount+` us-east-1 +4/4 done, 0 deferred, 0 dead$`).MatchString(got[1]) {
		t.Errorf("run's final display %q, want 4/4 done in all and for the account-region", got)
	}
	if !strings.Contains(term, "\x1b[1A\x1b[K") || !strings.Contains(term, "job success") {
		t.Errorf("run: no redraw over the logs on the terminal:\n%s", tail(term))
	}

	// A second day's jobs and a poison message for work --idle-exit.
	now = e.at(day)
	e.jsonCLI(0, "plan", "--queue", db, "--now", now)
	e.sendRaw(ctx, db, `{"v":1,"kind":"snapshot.create","key":"oops"}`)
	stdout, term, code = e.onTerminal("work", "--queue", db, "--idle-exit", "1s", "--now", now, "--allow-clock-skew", "--config", e.config, "--output", "json")
	var st map[string]int
	if err := json.Unmarshal([]byte(stdout), &st); code != 0 || err != nil || st["created"] != 4 || st["dead_lettered"] != 1 {
		t.Fatalf("work: exit %d, stdout %q (%v)\n%s", code, stdout, err, tail(term))
	}
	if got := finalDisplay(t, term, "work: "); len(got) != 2 || !strings.HasPrefix(got[0], "work: 5 done, 0 queued, 0 deferred, 1 dead-lettered") {
		t.Errorf("work's final display %q, want 5 done, 1 dead-lettered, nothing queued", got)
	}

	stdout, term, code = e.onTerminal("dlq", "replay", "--queue", db, "--output", "json")
	if code != 0 || !strings.Contains(stdout, `"moved": 1`) {
		t.Fatalf("dlq replay: exit %d, stdout %q\n%s", code, stdout, tail(term))
	}
	if got := finalDisplay(t, term, "dlq replay: "); len(got) != 1 || !strings.HasPrefix(got[0], "dlq replay: 1 moved, 0 skipped, 0 failed of 1") {
		t.Errorf("dlq replay's final display %q, want 1 moved of 1", got)
	}
}

// TestNoProgressOnPipe: with stderr on a pipe, run and work --idle-exit write nothing but
// their JSON logs to it.
func TestNoProgressOnPipe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.instancesWithData(ctx, 1, nil)
	db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")
	for _, args := range [][]string{
		{"run", "--queue", db, "--now", e.at(0), "--allow-clock-skew", "--config", e.config},
		{"work", "--queue", db, "--idle-exit", "1s", "--config", e.config},
	} {
		r := e.cli(args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, r.code, tail(r.stderr))
		}
		for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil || m["level"] == nil {
				t.Errorf("%s: stderr line %q is not a JSON log", args[0], l)
			}
		}
	}
}

// TestDisplayRedraw: a log written while the display shows clears its lines, appears above
// them and has them drawn again; Close leaves the final state on its own line.
func TestDisplayRedraw(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	d := newDisplay(&out, time.Hour, func() []string { return []string{"head", strings.Repeat("x", 100)} })
	if _, err := d.Write([]byte("log one\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write([]byte("log two")); err != nil {
		t.Fatal(err)
	}
	d.Close()
	s := out.String()
	if !strings.HasPrefix(s, "log one\nhead\n"+strings.Repeat("x", maxLine-1)+"…\r\x1b[K\x1b[1A\x1b[Klog two\nhead\n") {
		t.Errorf("output %q", s)
	}
	if !strings.HasSuffix(s, "…\n") {
		t.Errorf("output %q does not end with the final display and a new line", s)
	}
	if _, err := d.Write([]byte("after\n")); err != nil || !strings.HasSuffix(out.String(), "…\nafter\n") {
		t.Errorf("a write after Close: %q, %v", out.String(), err)
	}
}

// TestProgressETA: the ETA is the slowest account-region's at its buckets' rates, creates
// and deletes running side by side on their own buckets; a worker without a plan divides
// the queue's count by the summed create rates of the account-regions it has seen.
func TestProgressETA(t *testing.T) {
	t.Parallel()
	rates := map[string]float64{"a/CreateSnapshot": 5, "a/DeleteSnapshot": 2, "b/CreateSnapshot": 5, "b/DeleteSnapshot": 5}
	rate := func(account, _, action string) float64 { return rates[account+"/"+action] }
	p := newWorkProgress("run", rate)
	p.plan([]planner.Scope{{Account: "a", Region: "r", Creates: 100, Deletes: 30}, {Account: "b", Region: "r", Creates: 10}})
	for range 50 {
		p.observe(worker.Observation{Kind: job.KindCreate, Outcome: "success", Account: "a", Region: "r"})
	}
	p.observe(worker.Observation{Kind: job.KindDelete, Outcome: "dead_lettered", Account: "a", Region: "r"})
	p.observe(worker.Observation{Kind: job.KindCreate, Outcome: "deferred", Account: "b", Region: "r"})
	got := p.lines()
	// a: 50 creates left at 5/s = 10 s, 29 deletes at 2/s = 14.5 s → 15 s (rounded).
	if want := "run: 51/140 done, 1 deferred, 1 dead-lettered"; !strings.HasPrefix(got[0], want) || !strings.HasSuffix(got[0], "ETA 15s") {
		t.Errorf("head %q, want %q ... ETA 15s", got[0], want)
	}
	if len(got) != 3 || !strings.Contains(got[1], "a r") || !strings.Contains(got[1], "51/130 done, 0 deferred, 1 dead") {
		t.Errorf("lines %q: want a's line first (most left)", got)
	}
	rates["a/DeleteSnapshot"] = 0 // not limited, or unknown: no ETA rather than a wrong one
	if got := p.lines(); !strings.HasSuffix(got[0], "ETA -") {
		t.Errorf("head %q with an unknown rate, want ETA -", got[0])
	}

	w := newWorkProgress("work", rate)
	w.setQueued(100)
	if got := w.lines()[0]; !strings.HasSuffix(got, "ETA -") {
		t.Errorf("work before any job: %q, want ETA -", got)
	}
	w.observe(worker.Observation{Kind: job.KindCreate, Outcome: "success", Account: "a", Region: "r"})
	w.observe(worker.Observation{Kind: job.KindCreate, Outcome: "success", Account: "b", Region: "r"})
	w.observe(worker.Observation{Kind: job.KindCreate, Outcome: "dead_lettered"}) // undecodable: no account
	if got := w.lines()[0]; !strings.HasPrefix(got, "work: 3 done, 100 queued, 0 deferred, 1 dead-lettered") || !strings.HasSuffix(got, "ETA 10s") {
		t.Errorf("work: %q, want 3 done, 100 queued at 10/s: ETA 10s", got)
	}
}
