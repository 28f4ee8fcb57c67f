package worker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// The real backends satisfy the worker's Queue.
var _ Queue = queue.Queue(nil)

// fakeQueue is an in-memory queue with visibility timeouts and receive counts, recording
// every call the worker makes. With maxReceive > 0 it redrives as SQS does: a message
// received maxReceive times goes to the dead letters (exhausted_retries) instead of being
// received again.
type fakeQueue struct {
	mu         sync.Mutex
	visibility time.Duration
	maxReceive int
	seq        int
	msgs       []*fakeMsg
	dead       []deadLetter
	deleted    []string
	vis        []visCall
	requeued   []visCall
	maxAsked   int
	// linger: a receive cancelled by its caller goes on polling until its wait is over
	// and takes what becomes visible, to nobody (as SQS's long poll does).
	linger bool
}

type fakeMsg struct {
	id        string
	body      []byte
	attempts  int
	receipt   string
	visibleAt time.Time
}

type deadLetter struct{ id, reason, lastErr string }

type visCall struct {
	id string
	d  time.Duration
}

func newFakeQueue() *fakeQueue { return &fakeQueue{visibility: 30 * time.Second} }

// add enqueues bodies; attempts is the receive count they already have.
func (q *fakeQueue) add(attempts int, bodies ...[]byte) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var ids []string
	for _, b := range bodies {
		q.seq++
		id := fmt.Sprintf("m%d", q.seq)
		q.msgs = append(q.msgs, &fakeMsg{id: id, body: b, attempts: attempts})
		ids = append(ids, id)
	}
	return ids
}

func (q *fakeQueue) Receive(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error) {
	deadline := time.Now().Add(wait)
	for {
		q.mu.Lock()
		q.maxAsked = maxInt(q.maxAsked, max)
		now := time.Now()
		var out []queue.Message
		for _, m := range slices.Clone(q.msgs) {
			if len(out) == max {
				break
			}
			if m.visibleAt.After(now) {
				continue
			}
			if q.maxReceive > 0 && m.attempts >= q.maxReceive {
				q.msgs = slices.DeleteFunc(q.msgs, func(x *fakeMsg) bool { return x == m })
				q.dead = append(q.dead, deadLetter{m.id, reason.ExhaustedRetries, ""})
				continue
			}
			m.attempts++
			m.receipt = fmt.Sprintf("%s#%d", m.id, m.attempts)
			m.visibleAt = now.Add(q.visibility)
			out = append(out, queue.Message{ID: m.id, Receipt: m.receipt, Body: m.body, Attempts: m.attempts})
		}
		q.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		if !time.Now().Before(deadline) {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			if q.linger {
				go func() { _, _ = q.Receive(context.Background(), max, time.Until(deadline)) }()
			}
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// take removes the in-flight message with this receipt.
func (q *fakeQueue) take(receipt string) (*fakeMsg, error) {
	for i, m := range q.msgs {
		if m.receipt == receipt {
			q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
			return m, nil
		}
	}
	return nil, fmt.Errorf("receipt %q is not in flight", receipt)
}

func (q *fakeQueue) Delete(_ context.Context, msgs []queue.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range msgs {
		if _, err := q.take(m.Receipt); err != nil {
			return err
		}
		q.deleted = append(q.deleted, m.ID)
	}
	return nil
}

func (q *fakeQueue) SetVisibility(_ context.Context, m queue.Message, d time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, fm := range q.msgs {
		if fm.receipt == m.Receipt {
			fm.visibleAt = time.Now().Add(d)
			q.vis = append(q.vis, visCall{m.ID, d})
			return nil
		}
	}
	return fmt.Errorf("receipt %q is not in flight", m.Receipt)
}

// Requeue replaces the in-flight message by a new one with the same body and no receives,
// visible after d.
func (q *fakeQueue) Requeue(_ context.Context, m queue.Message, d time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	fm, err := q.take(m.Receipt)
	if err != nil {
		return err
	}
	q.seq++
	q.msgs = append(q.msgs, &fakeMsg{id: fmt.Sprintf("m%d", q.seq), body: fm.body, visibleAt: time.Now().Add(d)})
	q.requeued = append(q.requeued, visCall{m.ID, d})
	return nil
}

func (q *fakeQueue) MaxReceive(context.Context) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.maxReceive, nil
}

func (q *fakeQueue) requeues() []visCall {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]visCall(nil), q.requeued...)
}

func (q *fakeQueue) DeadLetter(_ context.Context, m queue.Message, reason, lastErr string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, err := q.take(m.Receipt); err != nil {
		return err
	}
	q.dead = append(q.dead, deadLetter{m.ID, reason, lastErr})
	return nil
}

func (q *fakeQueue) Stats(context.Context) (queue.Stats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var s queue.Stats
	now := time.Now()
	for _, m := range q.msgs {
		switch {
		case !m.visibleAt.After(now):
			s.Visible++
		case m.receipt != "":
			s.InFlight++
		default:
			s.Delayed++
		}
	}
	return s, nil
}

// snapshot of what the queue recorded.
func (q *fakeQueue) state() (left int, deleted []string, dead []deadLetter, vis []visCall) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.msgs), append([]string(nil), q.deleted...), append([]deadLetter(nil), q.dead...), append([]visCall(nil), q.vis...)
}

func (q *fakeQueue) deadReasons() map[string]string {
	_, _, dead, _ := q.state()
	m := map[string]string{}
	for _, d := range dead {
		m[d.id] = d.reason
	}
	return m
}

// encode returns the wire form of j, failing t if it is invalid.
func encode(t testing.TB, j job.Job) []byte {
	t.Helper()
	b, err := job.Encode(j)
	if err != nil {
		t.Fatalf("encoding test job: %v", err)
	}
	return b
}
