package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Sink that keeps every batch and tells of each on a channel.
type recorder struct {
	mu      sync.Mutex
	batches [][]Record
	wrote   chan int
	fail    error
}

func newRecorder() *recorder { return &recorder{wrote: make(chan int, 100)} }

func (r *recorder) Write(_ context.Context, recs []Record) error {
	r.mu.Lock()
	r.batches = append(r.batches, append([]Record(nil), recs...))
	r.mu.Unlock()
	r.wrote <- len(recs)
	return r.fail
}

func (r *recorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n []int
	for _, b := range r.batches {
		n = append(n, len(b))
	}
	return n
}

func recs(n int) []Record {
	out := make([]Record, n)
	for i := range out {
		out[i] = Record{Action: "created", Key: strings.Repeat("k", i+1)}
	}
	return out
}

func waitWrite(t *testing.T, r *recorder) int {
	t.Helper()
	select {
	case n := <-r.wrote:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no batch written within 10 s")
		return 0
	}
}

// TestBatcherMax: records beyond Max are written in full batches without waiting for the
// delay (an hour here), the rest on Close, in order, and each once.
func TestBatcherMax(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	b := NewBatcher(time.Hour, 3, nil, r)
	all := recs(7)
	for _, rec := range all {
		b.Audit(context.Background(), rec)
	}
	waitWrite(t, r)
	waitWrite(t, r) // two full batches of 3, long before the hour
	b.Close()
	if got := r.sizes(); len(got) != 3 || got[0] != 3 || got[1] != 3 || got[2] != 1 {
		t.Fatalf("batches %v, want [3 3 1]", got)
	}
	var keys []string
	for _, bt := range r.batches {
		for _, rec := range bt {
			keys = append(keys, rec.Key)
		}
	}
	for i, k := range keys {
		if k != all[i].Key {
			t.Fatalf("record %d is %s, want %s: out of order", i, k, all[i].Key)
		}
	}
}

// TestBatcherDelay: a batch smaller than Max is written after the delay, without Close.
func TestBatcherDelay(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	b := NewBatcher(10*time.Millisecond, 100, nil, r)
	defer b.Close()
	b.Audit(context.Background(), recs(2)...)
	if n := waitWrite(t, r); n != 2 {
		t.Fatalf("batch of %d, want 2", n)
	}
}

// TestBatcherErrors: a failed write is reported with the records it lost; every sink is
// written; Audit after Close writes at once.
func TestBatcherErrors(t *testing.T) {
	t.Parallel()
	bad, good := newRecorder(), newRecorder()
	bad.fail = errors.New("disk full")
	var lost int
	var mu sync.Mutex
	b := NewBatcher(time.Hour, 100, func(err error, n int) { mu.Lock(); lost += n; mu.Unlock() }, bad, good)
	b.Audit(context.Background(), recs(4)...)
	b.Close()
	b.Audit(context.Background(), recs(1)...)
	mu.Lock()
	defer mu.Unlock()
	if lost != 5 || len(good.sizes()) != 2 || good.sizes()[0] != 4 {
		t.Fatalf("lost %d, good sink batches %v: want 5 lost and [4 1] written", lost, good.sizes())
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	in := Record{At: at, Kind: "snapshot.delete", Snapshot: "snap-0123456789abcdef0", Action: Refused, Reason: "refused_retention", Host: "h", PID: 7}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	for _, bad := range []string{``, `{}`, `{"action":"created","extra":1}`, `{"action":"created"} {}`, `[1]`, `{"action":"x","at":"yesterday"}`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q): no error", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"at":"2026-11-22T01:00:00Z","action":"created","snapshot":"snap-0123456789abcdef0","host":"h","pid":1}`))
	f.Add([]byte(`{"action":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Decode(again)
		if err != nil || !r2.At.Equal(r.At) || r2.Action != r.Action || r2.Key != r.Key {
			t.Fatalf("re-decoding %s: %+v, %v", again, r2, err)
		}
	})
}

func TestFilter(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	create := Record{At: at, Key: "111111111111/us-east-1/vol-0abc0abc/daily/2026-11-22T00:00:00Z", Volume: "vol-0abc0abc", Snapshot: "snap-1111aaaa", Action: "created"}
	refused := Record{At: at, Key: "111111111111/us-east-1/snap-2222bbbb/delete", Action: Refused}
	for _, c := range []struct {
		f    Filter
		r    Record
		want bool
	}{
		{Filter{}, create, true},
		{Filter{Since: at}, create, true},
		{Filter{Since: at.Add(time.Nanosecond)}, create, false},
		{Filter{Snapshot: "snap-1111aaaa"}, create, true},
		{Filter{Snapshot: "snap-2222bbbb"}, create, false},
		{Filter{Snapshot: "snap-2222bbbb"}, refused, true}, // by its key, the snapshot field aside
		{Filter{Volume: "vol-0abc0abc"}, create, true},
		{Filter{Volume: "vol-0abc0abc"}, refused, false},
	} {
		if got := c.f.Match(c.r); got != c.want {
			t.Errorf("%+v.Match(%s) = %v, want %v", c.f, c.r.Key, got, c.want)
		}
	}
}

func ExampleRecord() {
	r := Record{At: time.Date(2026, 11, 22, 1, 0, 3, 0, time.UTC), Run: "20261122T010000Z-ab12cd34",
		Key: "111111111111/us-east-1/snap-0abc0abc0abc0abc0/delete", Kind: "snapshot.delete",
		Account: "111111111111", Region: "us-east-1", Policy: "daily", Snapshot: "snap-0abc0abc0abc0abc0",
		Volume: "vol-0abc0abc0abc0abc0", Action: "deleted", Reason: "expired", Host: "worker-1", PID: 4242}
	b, _ := json.MarshalIndent(r, "", "  ")
	fmt.Println(string(b))
	// Output:
	// {
	//   "at": "2026-11-22T01:00:03Z",
	//   "run": "20261122T010000Z-ab12cd34",
	//   "key": "111111111111/us-east-1/snap-0abc0abc0abc0abc0/delete",
	//   "kind": "snapshot.delete",
	//   "account": "111111111111",
	//   "region": "us-east-1",
	//   "policy": "daily",
	//   "snapshot": "snap-0abc0abc0abc0abc0",
	//   "volume": "vol-0abc0abc0abc0abc0",
	//   "action": "deleted",
	//   "reason": "expired",
	//   "host": "worker-1",
	//   "pid": 4242
	// }
}
