package queue_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/queue"
)

// childEnv makes the test binary a queue worker process for TestEmbeddedProcesses.
const childEnv = "SNAPFLEET_QUEUE_TEST_CHILD"

func TestMain(m *testing.M) {
	if u := os.Getenv(childEnv); u != "" {
		if err := child(u); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if moto.s != nil {
		moto.s.Stop()
	}
	os.Exit(code)
}

// child receives and deletes until the queue has stayed empty for a second, printing the
// body of each message it deleted.
func child(u string) error {
	ctx := context.Background()
	q, err := queue.Open(ctx, u, queue.Options{Visibility: 30 * time.Second})
	if err != nil {
		return err
	}
	defer q.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	idle := time.Now()
	for time.Since(idle) < time.Second {
		ms, err := q.Receive(ctx, 3, 200*time.Millisecond)
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			continue
		}
		idle = time.Now()
		if err := q.Delete(ctx, ms); err != nil {
			return err
		}
		for _, m := range ms {
			fmt.Fprintln(out, string(m.Body))
		}
	}
	return nil
}

func openFile(t *testing.T, path string, o queue.Options) queue.Queue {
	t.Helper()
	q, err := queue.Open(context.Background(), "file:"+path, o)
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func numbered(n int) []string {
	var bodies []string
	for i := range n {
		bodies = append(bodies, fmt.Sprintf("job %03d", i))
	}
	return bodies
}

// Three processes on one file, as `snapfleet work` ×3 would: every message is delivered
// to exactly one of them and no "database is locked" error surfaces.
func TestEmbeddedProcesses(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	q := openFile(t, path, queue.Options{})
	bodies := numbered(300)
	send(t, q, bodies...)

	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, 3)
	errs := make([]error, 3)
	for i := range outs {
		wg.Go(func() {
			var stderr bytes.Buffer
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"=file:"+path)
			cmd.Stdout, cmd.Stderr = &outs[i], &stderr
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("process %d: %v: %s", i, err, stderr.String())
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for i := range outs {
		for _, line := range strings.Split(strings.TrimSpace(outs[i].String()), "\n") {
			if line != "" {
				count[line]++
			}
		}
	}
	for _, b := range bodies {
		if count[b] != 1 {
			t.Errorf("%q was handled %d times, want 1", b, count[b])
		}
	}
	if len(count) != len(bodies) {
		t.Errorf("handled %d distinct messages, want %d", len(count), len(bodies))
	}
	wantStats(t, q, queue.Stats{})
}

// Two handles on the same file never deliver a message to both while it is in flight.
func TestEmbeddedTwoHandles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	handles := []queue.Queue{
		openFile(t, path, queue.Options{Visibility: 30 * time.Second}),
		openFile(t, path, queue.Options{Visibility: 30 * time.Second}),
	}
	bodies := numbered(120)
	send(t, handles[0], bodies...)

	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, h := range handles {
		for range 3 {
			wg.Go(func() {
				for {
					ms, err := h.Receive(context.Background(), 4, 100*time.Millisecond)
					if err != nil {
						t.Errorf("Receive: %v", err)
						return
					}
					if len(ms) == 0 {
						return
					}
					mu.Lock()
					for _, m := range ms {
						seen[m.ID]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(seen) != len(bodies) {
		t.Errorf("received %d distinct messages, want %d", len(seen), len(bodies))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %s delivered %d times while in flight", id, n)
		}
	}
	wantStats(t, handles[1], queue.Stats{InFlight: len(bodies)})
}

// A receipt from before a message was received again no longer deletes or extends it.
func TestEmbeddedStaleReceipt(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "q.db")
	a := openFile(t, path, queue.Options{Visibility: 300 * time.Millisecond})
	b := openFile(t, path, queue.Options{Visibility: 30 * time.Second})
	send(t, a, "slow job")
	old := receiveN(t, a, 1, 5*time.Second)[0]
	time.Sleep(400 * time.Millisecond)
	cur := receiveN(t, b, 1, 5*time.Second)[0]
	if cur.ID != old.ID || cur.Attempts != 2 {
		t.Fatalf("second receive = %s attempt %d, want %s attempt 2", cur.ID, cur.Attempts, old.ID)
	}
	if err := a.Delete(testCtx(t), []queue.Message{old}); err == nil || !strings.Contains(err.Error(), "received again") {
		t.Errorf("Delete with a stale receipt = %v, want an error", err)
	}
	if err := a.SetVisibility(testCtx(t), old, 0); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Errorf("SetVisibility with a stale receipt = %v, want an error", err)
	}
	if err := a.DeadLetter(testCtx(t), old, "permanent", "x"); err == nil {
		t.Error("DeadLetter with a stale receipt succeeded, want an error")
	}
	wantStats(t, b, queue.Stats{InFlight: 1})
	if err := b.Delete(testCtx(t), []queue.Message{cur}); err != nil {
		t.Fatalf("Delete with the current receipt: %v", err)
	}
	if err := b.Delete(testCtx(t), []queue.Message{cur}); err != nil {
		t.Errorf("deleting a deleted message again = %v, want success", err)
	}
	if err := b.SetVisibility(testCtx(t), cur, time.Minute); err == nil || !strings.Contains(err.Error(), "no longer in the queue") {
		t.Errorf("SetVisibility of a deleted message = %v, want an error", err)
	}
	wantStats(t, b, queue.Stats{})
}

// Messages, dead letters and their reasons survive closing and reopening the file.
func TestEmbeddedReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "q.db")
	q, err := queue.Open(context.Background(), "file:"+path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	send(t, q, "stays", "dies")
	var dies queue.Message
	for _, m := range receiveN(t, q, 2, 5*time.Second) {
		if string(m.Body) == "dies" {
			dies = m
		} else if err := q.SetVisibility(testCtx(t), m, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.DeadLetter(testCtx(t), dies, "invalid_message", "bad json"); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = openFile(t, path, queue.Options{})
	if got := receiveN(t, q, 1, 5*time.Second)[0]; string(got.Body) != "stays" || got.Attempts != 2 {
		t.Errorf("after reopening got %q attempt %d, want stays attempt 2", got.Body, got.Attempts)
	}
	d := dlq(t, q)
	if got := receiveN(t, d, 1, 5*time.Second)[0]; string(got.Body) != "dies" || got.Reason != "invalid_message" || got.LastError != "bad json" {
		t.Errorf("dead letter after reopening = %q %q %q", got.Body, got.Reason, got.LastError)
	}
	if err := d.Close(); err != nil {
		t.Errorf("closing the DLQ handle: %v", err)
	}
	wantStats(t, q, queue.Stats{InFlight: 1}) // the DLQ handle's Close left the file open

	// The DLQ's URL opens the DLQ itself.
	if want := "file:" + path + "#dlq"; d.URL() != want {
		t.Fatalf("DLQ URL = %q, want %q", d.URL(), want)
	}
	byURL := openFile(t, path+"#dlq", queue.Options{})
	wantStats(t, byURL, queue.Stats{InFlight: 1})
	if _, err := byURL.DLQ(testCtx(t)); err == nil {
		t.Error("the DLQ opened by URL has a DLQ of its own")
	}
}

func TestEmbeddedBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"file:", "file:" + filepath.Join(t.TempDir(), "a?b.db"), "sqlite:x.db", "", "file:" + filepath.Join(t.TempDir(), "missing-dir", "q.db")} {
		q, err := queue.Open(context.Background(), u, queue.Options{})
		if err == nil {
			_ = q.Close()
			t.Errorf("Open(%q) succeeded, want an error", u)
		}
	}
}

// A file made before the first-receive columns existed opens, gains them, and keeps its
// messages and dead letters (whose first receive is then unknown).
func TestEmbeddedAddsColumns(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "old.db")
	q, err := queue.Open(context.Background(), "file:"+path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	send(t, q, "waits", "dies")
	for _, m := range receiveN(t, q, 2, 5*time.Second) {
		if string(m.Body) == "dies" {
			if err := q.DeadLetter(testCtx(t), m, "invalid_message", "bad json"); err != nil {
				t.Fatal(err)
			}
		} else if err := q.SetVisibility(testCtx(t), m, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`alter table goqite drop column snapfleet_first_received`,
		`alter table snapfleet_dead_letter drop column first_received`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	q = openFile(t, path, queue.Options{})
	m := receiveN(t, q, 1, 5*time.Second)[0]
	if string(m.Body) != "waits" || m.Attempts != 2 {
		t.Errorf("after adding the columns got %q attempt %d, want waits attempt 2", m.Body, m.Attempts)
	}
	// Its first receive was not recorded: the first one seen since counts.
	near(t, "FirstReceivedAt", m.FirstReceivedAt, before, time.Now())
	got := receiveN(t, dlq(t, q), 1, 5*time.Second)[0]
	if string(got.Body) != "dies" || got.Reason != "invalid_message" || !got.FirstReceivedAt.IsZero() {
		t.Errorf("dead letter = %q %q first received %s, want dies invalid_message and no first receive", got.Body, got.Reason, got.FirstReceivedAt)
	}
}

// TestCheckURL: the form of a queue address is checked without opening anything.
func TestCheckURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"file:snapfleet.db", true},
		{"file:/var/lib/snapfleet/q.db#dlq", true},
		{"https://sqs.eu-west-1.amazonaws.com/111111111111/jobs", true},
		{"http://127.0.0.1:5000/123456789012/jobs.fifo", true},
		{"file:", false},
		{"file:#dlq", false},
		{"file:a?b.db", false},
		{"file:a#b.db", false},
		{"ftp://x", false},
		{"sqlite:x.db", false},
		{"", false},
		{"https:///111111111111/jobs", false},
		{"https://sqs.eu-west-1.amazonaws.com/111111111111", false},
		{"https://sqs.eu-west-1.amazonaws.com/111111111111/jobs/extra", false},
	} {
		err := queue.CheckURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
		if err != nil && !errors.Is(err, queue.ErrBadURL) {
			t.Errorf("CheckURL(%q) = %v, not ErrBadURL", tc.url, err)
		}
	}
}
