package planner

import (
	"context"
	"fmt"
	"sync"

	"github.com/snapfleet/snapfleet/queue"
)

// Send order. A queue hands messages out about in the order they were sent (the embedded
// queue and the bench's simulator exactly), and a worker holds of each account-region only
// what its buckets can start soon (worker/admit.go): what the workers work on is what the
// head of the queue holds. Sent as each account-region was planned, Parallel at a time,
// the head held the jobs of the first Parallel account-regions only, and the others'
// buckets idled until those were nearly done (BENCHMARKS.md, linear/50: 50
// account-regions worked 16 at a time, η 0.31). So Plan sends once every account-region
// is planned, one job of each account-region in turn: every stretch of the queue holds
// jobs of every account-region that still has some, and every bucket is fed from the
// start. The cost: the first job is sent when the last account-region is planned, and
// the plan holds the jobs of all of them until they are sent.

// outbox is the jobs of one account-region, waiting to be sent.
type outbox struct {
	sc    *scopeRun
	msgs  []queue.Outgoing
	total int // how many msgs held before sendAll
	sent  int
	err   error // of the first failed Send carrying its jobs: the rest of them are not sent
}

// turn is one message in the send order, with its account-region's outbox.
type turn struct {
	box *outbox
	m   queue.Outgoing
}

// roundRobin orders the messages of the outboxes one of each in turn, each outbox's in
// its own order, until all are taken.
func roundRobin(boxes []*outbox) []turn {
	total, most := 0, 0
	for _, b := range boxes {
		total += len(b.msgs)
		most = max(most, len(b.msgs))
	}
	out := make([]turn, 0, total)
	for i := range most {
		for _, b := range boxes {
			if i < len(b.msgs) {
				out = append(out, turn{b, b.msgs[i]})
			}
		}
	}
	return out
}

// sendAll sends the outboxes' messages in round-robin order, sendBatch to a Send,
// Parallel Sends at once (one account-region of 100,000 volumes is 13,000 of them: one
// after another they took most of its plan), and counts in each outbox what was sent. A
// failed Send ends the sending of the account-regions it carried jobs of, each recording
// it (the next plan enqueues the rest); the others go on.
func (p *Planner) sendAll(ctx context.Context, boxes []*outbox) {
	s := &sending{order: roundRobin(boxes)}
	for _, b := range boxes {
		b.total, b.msgs = len(b.msgs), nil // held by order until sent
	}
	s.batches = (len(s.order) + sendBatch - 1) / sendBatch
	var wg sync.WaitGroup
	for range min(Parallel, s.batches) {
		wg.Go(func() {
			for {
				msgs, n, ok := s.take()
				if !ok {
					return
				}
				if len(msgs) > 0 {
					s.sent(n, p.Queue.Send(ctx, msgs))
				}
			}
		})
	}
	wg.Wait()
	for _, b := range boxes {
		if b.err != nil {
			b.sc.fail(fmt.Errorf("enqueuing jobs of %s/%s (%d of %d sent): %w", b.sc.account, b.sc.region, b.sent, b.total, b.err))
		}
	}
}

// sending is the progress of sendAll.
type sending struct {
	order   []turn
	batches int
	mu      sync.Mutex
	next    int // the next batch to take
}

// take returns the next batch's messages — but those of account-regions whose sending
// failed — and how many each outbox has among them; false when all batches are taken.
func (s *sending) take() ([]queue.Outgoing, map[*outbox]int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next >= s.batches {
		return nil, nil, false
	}
	b := s.next
	s.next++
	var msgs []queue.Outgoing
	n := map[*outbox]int{}
	for _, t := range s.order[b*sendBatch : min((b+1)*sendBatch, len(s.order))] {
		if t.box.err == nil {
			msgs = append(msgs, t.m)
			n[t.box]++
		}
	}
	return msgs, n, true
}

// sent counts a batch taken, sent or failed with err.
func (s *sending) sent(n map[*outbox]int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for box, k := range n {
		switch {
		case err == nil:
			box.sent += k
		case box.err == nil:
			box.err = err
		}
	}
}
