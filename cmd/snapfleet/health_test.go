package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/snapfleet/snapfleet/internal/testbed/logbuf"
	"github.com/snapfleet/snapfleet/worker"
)

// httpGet returns the status and body of a GET, or the error of a server that does not answer.
func httpGet(url string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// eventually calls f until it returns "" or the deadline passes, then fails with its last
// complaint.
func eventually(t *testing.T, limit time.Duration, f func() string) {
	t.Helper()
	var why string
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if why = f(); why == "" {
			return
		}
	}
	t.Fatalf("after %s: %s", limit, why)
}

// TestWorkHealthEndpoints runs `snapfleet work --health-addr` against moto: /healthz and
// /readyz answer 200 once the worker polls the queue, /metrics counts the jobs it did by
// kind and outcome and its dead letters by reason, and after SIGTERM /readyz fails (503)
// or the server is gone, and the worker exits 0.
func TestWorkHealthEndpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	url := e.sqsQueues(ctx, "jobs")
	e.instancesWithData(ctx, 1, nil)
	if p := e.jsonCLI(0, "plan", "--queue", url, "--now", e.at(0)); num(t, p, "enqueued") != 2 {
		t.Fatalf("plan %v, want 2 jobs", p)
	}
	if _, err := e.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(`{"v":1,"kind":"snapshot.create","key":"oops"}`)}); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(binary, "work", "--queue", url, "--config", e.config, "--now", e.at(0), "--allow-clock-skew",
		"--visibility", "10s", "--output", "json", "--health-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), e.moto.Env()...)
	var stdout, stderr logbuf.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	// The worker logs the address it listens on (port 0: a free one).
	var base string
	listening := regexp.MustCompile(`"addr":"(127\.0\.0\.1:[0-9]+)"[^\n]*serving /healthz`)
	eventually(t, 30*time.Second, func() string {
		if m := listening.FindStringSubmatch(stderr.String()); m != nil {
			base = "http://" + m[1]
			return ""
		}
		return "the worker logged no health address:\n" + tail(stderr.String())
	})
	eventually(t, 30*time.Second, func() string {
		code, body, err := httpGet(base + "/readyz")
		if code != http.StatusOK {
			return "/readyz: " + http.StatusText(code) + " " + body + " " + errString(err)
		}
		return ""
	})
	if code, body, err := httpGet(base + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s %v", code, body, err)
	}
	want := []string{
		`snapfleet_jobs_processed_total{kind="snapshot.create",outcome="success"} 2`,
		`snapfleet_jobs_processed_total{kind="unknown",outcome="dead_lettered"} 1`,
		`snapfleet_dead_letters_total{reason="invalid_message"} 1`,
		`snapfleet_jobs_in_flight 0`,
	}
	eventually(t, 60*time.Second, func() string {
		_, body, err := httpGet(base + "/metrics")
		if err != nil {
			return err.Error()
		}
		for _, w := range want {
			if !strings.Contains(body, "\n"+w+"\n") {
				return "/metrics lacks " + w + ":\n" + body
			}
		}
		return ""
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Draining: /readyz answers 503 until the server closes; it never says ready again.
	eventually(t, 30*time.Second, func() string {
		code, body, err := httpGet(base + "/readyz")
		switch {
		case err != nil:
			return "" // closed
		case code == http.StatusServiceUnavailable:
			return ""
		default:
			return "/readyz after SIGTERM: " + http.StatusText(code) + " " + body
		}
	})
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("worker exit: %v\n%s", exitErr, tail(stderr.String()))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not exit within 30s of SIGTERM")
	}
	if _, _, err := httpGet(base + "/readyz"); err == nil {
		t.Error("the health server still answers after the worker exited")
	}
	if !strings.Contains(stdout.String(), `"created": 2`) {
		t.Errorf("worker summary %s, want 2 created", stdout.String())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestHealthProbes: /healthz fails once the loop has gone liveFor without a receive or a
// settled job (unless draining); /readyz waits for a successful receive and fails while
// shutting down; a dead letter the queue refused is not counted.
func TestHealthProbes(t *testing.T) {
	t.Parallel()
	h := newHealth(40 * time.Second)
	if h.liveFor != 70*time.Second {
		t.Fatalf("liveFor = %s, want 3 long polls + a quarter of the visibility", h.liveFor)
	}
	clock := time.Now()
	var mu sync.Mutex
	h.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	h.last = clock
	srv := httptest.NewServer(h.handler())
	defer srv.Close()
	status := func(path string) int {
		t.Helper()
		code, _, err := httpGet(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	steps := []struct {
		name            string
		do              func()
		healthz, readyz int
	}{
		{"started", func() {}, 200, 503},
		{"receive failed", func() { h.observe(worker.Observation{Polled: true, Err: errors.New("no route")}) }, 200, 503},
		{"queue reached", func() { h.observe(worker.Observation{Polled: true, Received: 2}) }, 200, 200},
		{"quiet for liveFor", func() { advance(70 * time.Second) }, 200, 200},
		{"quiet longer", func() { advance(time.Second) }, 503, 200},
		{"a job settles", func() { h.observe(worker.Observation{Kind: "snapshot.create", Outcome: "success"}) }, 200, 200},
		{"dead letter refused by the queue", func() {
			h.observe(worker.Observation{Kind: "snapshot.delete", Outcome: "dead_lettered", Reason: "refused_retention", Err: errors.New("throttled")})
		}, 200, 200},
		{"shutting down, quiet", func() { h.shutdown(); advance(time.Hour) }, 200, 503},
	}
	for _, s := range steps {
		s.do()
		if got := status("/healthz"); got != s.healthz {
			t.Errorf("%s: /healthz %d, want %d", s.name, got, s.healthz)
		}
		if got := status("/readyz"); got != s.readyz {
			t.Errorf("%s: /readyz %d, want %d", s.name, got, s.readyz)
		}
	}
	_, body, err := httpGet(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		`snapfleet_jobs_processed_total{kind="snapshot.create",outcome="success"} 1`,
		`snapfleet_jobs_processed_total{kind="snapshot.delete",outcome="dead_lettered"} 1`,
		`snapfleet_jobs_in_flight 0`,
	} {
		if !strings.Contains(body, "\n"+w+"\n") {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	if strings.Contains(body, "snapfleet_dead_letters_total{") {
		t.Errorf("a dead letter the queue refused was counted:\n%s", body)
	}
}
