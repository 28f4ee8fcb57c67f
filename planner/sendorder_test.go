package planner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/queue"
)

// batches is a Sender that keeps each Send's messages apart; refuse, when set, fails a
// Send carrying a message it says yes to.
type batches struct {
	mu     sync.Mutex
	sends  [][]queue.Outgoing
	refuse func(queue.Outgoing) bool
}

func (b *batches) Send(_ context.Context, msgs []queue.Outgoing) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(msgs) > sendBatch {
		return fmt.Errorf("batch of %d, over %d", len(msgs), sendBatch)
	}
	for _, m := range msgs {
		if b.refuse != nil && b.refuse(m) {
			return errors.New("queue unavailable")
		}
	}
	b.sends = append(b.sends, msgs)
	return nil
}

// TestPlanSendsAccountRegionsInTurnThroughMoto: three regions of four volumes each are
// planned, then sent one job of each region in turn, so that workers taking the queue in
// order feed every region's buckets at once: no Send carries two jobs of a region in a
// row. (Sent as each region was planned, a Send carried one region's jobs only, and with
// more account-regions than Parallel the queue's head held the first Parallel's.)
func TestPlanSendsAccountRegionsInTurnThroughMoto(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	regions := []string{"us-east-1", "eu-west-1", "us-west-2"}
	cfg := mustConfig(t, `
regions: [us-east-1, eu-west-1, us-west-2]
policies:
  - name: daily
    retain: {max_age: 30d}
`)
	for _, r := range regions {
		c := f.client(r)
		for range 2 {
			f.instance(c, r+"a", nil) // two volumes each
		}
	}
	q := &batches{}
	sum, err := f.planner(cfg, regions, nil, q, time.Now()).Plan(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Enqueued != 12 || sum.SnapshotJobs != 12 || sum.Errors != 0 {
		t.Fatalf("summary %+v", sum)
	}
	total := 0
	for i, msgs := range q.sends {
		var got []string
		for _, m := range msgs {
			j, err := job.Decode(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, j.Region)
		}
		total += len(got)
		for k := 1; k < len(got); k++ {
			if got[k] == got[k-1] {
				t.Fatalf("send %d carries regions %v: two jobs of %s in a row", i, got, got[k])
			}
		}
	}
	if total != 12 || len(q.sends) != 2 {
		t.Fatalf("%d jobs in %d sends, want 12 in 2", total, len(q.sends))
	}
}

// TestSendAllFailureStopsItsAccountRegions: a failed Send ends the sending of the
// account-regions it carried jobs of, each recording what was sent; an account-region it
// did not carry is sent in full.
func TestSendAllFailureStopsItsAccountRegions(t *testing.T) {
	t.Parallel()
	box := func(name string, n int) *outbox {
		b := &outbox{sc: newScopeRun(zerolog.Nop(), name, "us-east-1")}
		for i := range n {
			b.msgs = append(b.msgs, queue.Outgoing{Body: fmt.Appendf(nil, "%s%d", name, i)})
		}
		return b
	}
	a, b, c := box("a", 12), box("b", 12), box("c", 3)
	// The order: a0 b0 c0 a1 b1 c1 a2 b2 c2 a3 | b3 a4 b4 a5 b5 a6 ... | ...: the queue
	// refuses a's and b's jobs from their fifth on, so the second Send fails, c is done.
	q := &batches{refuse: func(m queue.Outgoing) bool {
		var name string
		var i int
		_, _ = fmt.Sscanf(string(m.Body), "%1s%d", &name, &i)
		return name != "c" && i >= 5
	}}
	p := &Planner{Queue: q}
	p.sendAll(context.Background(), []*outbox{a, b, c})
	if a.sent != 4 || b.sent != 3 || c.sent != 3 {
		t.Fatalf("sent a %d, b %d, c %d; want 4, 3, 3", a.sent, b.sent, c.sent)
	}
	if len(c.sc.failures) != 0 || len(a.sc.failures) != 1 || len(b.sc.failures) != 1 ||
		!strings.Contains(a.sc.failures[0].Error, "enqueuing jobs of a/us-east-1 (4 of 12 sent): queue unavailable") ||
		!strings.Contains(b.sc.failures[0].Error, "(3 of 12 sent)") {
		t.Fatalf("failures a %v, b %v, c %v", a.sc.failures, b.sc.failures, c.sc.failures)
	}
}
