package queue_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snapfleet/snapfleet/queue"
)

func readAll(t *testing.T, j queue.Journal, stream string, since time.Time) []string {
	t.Helper()
	var got []string
	err := j.Read(context.Background(), stream, since, func(r queue.Record) error {
		got = append(got, r.At.Format(time.RFC3339)+" "+string(r.Body))
		return nil
	})
	if err != nil {
		t.Fatalf("reading %s: %v", stream, err)
	}
	return got
}

// The embedded queue's journal keeps records by stream, in time order, across a reopen of
// the file, and from its DLQ's handle too; Read stops at fn's error.
func TestEmbeddedJournal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "q.db")
	q := openFile(t, path, queue.Options{})
	j, ok := queue.JournalOf(q)
	if !ok {
		t.Fatal("the embedded queue has no journal")
	}
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	rec := func(min int, body string) queue.Record {
		return queue.Record{At: t0.Add(time.Duration(min) * time.Minute), Body: []byte(body)}
	}
	if err := j.Append(ctx, "audit", rec(2, `{"n":2}`), rec(0, `{"n":0}`)); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(ctx, "drill", rec(1, `{"d":1}`)); err != nil {
		t.Fatal(err)
	}
	dlq, err := q.DLQ(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dj, ok := queue.JournalOf(dlq)
	if !ok {
		t.Fatal("the embedded DLQ's handle has no journal")
	}
	if err := dj.Append(ctx, "audit", rec(1, `{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	_ = q.Close()

	j2, _ := queue.JournalOf(openFile(t, path, queue.Options{}))
	want := []string{
		"2026-11-22T01:00:00Z {\"n\":0}", "2026-11-22T01:01:00Z {\"n\":1}", "2026-11-22T01:02:00Z {\"n\":2}",
	}
	if diff := cmp.Diff(want, readAll(t, j2, "audit", time.Time{})); diff != "" {
		t.Errorf("audit stream (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[1:], readAll(t, j2, "audit", t0.Add(time.Minute))); diff != "" {
		t.Errorf("audit since 01:01 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"2026-11-22T01:01:00Z {\"d\":1}"}, readAll(t, j2, "drill", time.Time{})); diff != "" {
		t.Errorf("drill stream (-want +got):\n%s", diff)
	}
	stop := errors.New("stop")
	n := 0
	err = j2.Read(ctx, "audit", time.Time{}, func(queue.Record) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Read after fn's error: err %v after %d records, want stop after 1", err, n)
	}
}
