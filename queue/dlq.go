package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// peekWait is how long Peek and Replay wait on a receive before they take an empty answer
// as the end of the dead-letter queue. SQS long-polls every server of the queue when the
// wait is not zero, so an empty answer then means empty, not "not sampled".
const peekWait = time.Second

// Peek receives every visible message of q, up to limit (0: no limit), and makes them all
// visible again at once before it returns, so that listing a dead-letter queue consumes
// nothing. The messages stay hidden while Peek runs: q's visibility timeout (the one it was
// opened with) must outlast the listing, else a message is seen twice and listed once.
// Each message's receipt is spent when Peek returns.
func Peek(ctx context.Context, q Queue, limit int) ([]Message, error) {
	var (
		msgs []Message
		seen = map[string]int{} // message id → index in msgs
		err  error
	)
	for limit <= 0 || len(msgs) < limit {
		n := sqsBatch
		if limit > 0 {
			n = min(n, limit-len(msgs))
		}
		var got []Message
		got, err = q.Receive(ctx, n, peekWait)
		if err != nil || len(got) == 0 {
			break
		}
		for _, m := range got {
			if i, ok := seen[m.ID]; ok {
				msgs[i] = m // its visibility ran out: keep the newer receipt
				continue
			}
			seen[m.ID] = len(msgs)
			msgs = append(msgs, m)
		}
	}
	if rerr := release(context.WithoutCancel(ctx), q, msgs); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return msgs, fmt.Errorf("listing %s: %w", q.URL(), err)
	}
	return msgs, nil
}

// release makes msgs visible again at once.
func release(ctx context.Context, q Queue, msgs []Message) error {
	var errs []error
	for _, m := range msgs {
		if err := q.SetVisibility(ctx, m, 0); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("releasing %d of %d messages (they are visible again after the visibility timeout): %w",
			len(errs), len(msgs), errors.Join(errs...))
	}
	return nil
}

// ReplayOptions choose what Replay moves and how.
type ReplayOptions struct {
	// Match selects the messages to move; nil moves every message.
	Match func(Message) bool
	// Outgoing builds the message sent to the destination from a dead letter (FIFO ids
	// in particular); nil sends the body with the FIFO deduplication id "replay-" + the
	// dead letter's id (a replay must not reuse the original's: SQS would drop it as a
	// duplicate within five minutes of the first send). The body should stay unchanged.
	Outgoing func(Message) Outgoing
	// Max bounds how many messages are moved; 0 is no bound.
	Max int
	// DryRun moves nothing: it counts what would move.
	DryRun bool
	// Progress, when set, is told the counts so far before each batch (a display).
	Progress func(ReplayResult)
}

// Methods of a replay.
const (
	// MethodMoveTask: the backend moved the messages itself (SQS StartMessageMoveTask).
	MethodMoveTask = "move_task"
	// MethodReceive: Replay received, sent and deleted the messages one batch at a time.
	MethodReceive = "receive"
)

// ReplayResult counts what a replay did.
type ReplayResult struct {
	// Matched counts the messages seen that matched, up to Max.
	Matched int `json:"matched"`
	// Moved counts the messages sent to the destination and deleted from the DLQ.
	Moved int `json:"moved"`
	// Skipped counts the messages seen and left in the DLQ: not matching, or over Max.
	Skipped int `json:"skipped"`
	// Failed counts matching messages that could not be moved: not sent (they stay in the
	// DLQ), or sent but not deleted from the DLQ (a later replay sends them again).
	Failed int `json:"failed"`
	// DryRun is set when nothing was moved on purpose.
	DryRun bool `json:"dry_run"`
	// Method is MethodMoveTask or MethodReceive.
	Method string `json:"method"`
	// Fallback says why a move task was tried and not used, if it was.
	Fallback string `json:"fallback,omitempty"`
}

// mover is a dead-letter queue whose backend moves its messages to another queue itself.
type mover interface {
	// moveAll moves every message of the DLQ to dst and waits until the move ends. It
	// returns errMoveUnsupported (wrapped) when the backend cannot do it, before it moved
	// anything.
	moveAll(ctx context.Context, dst Queue) (moved int, err error)
}

// errMoveUnsupported is a move task the endpoint refused or does not know, before it
// moved anything: the receive/send/delete loop is used instead.
var errMoveUnsupported = errors.New("move task not available")

// replaying is the state of a Replay by receives: the messages left in the DLQ (held, to
// release at the end) and the counts.
type replaying struct {
	o    ReplayOptions
	res  *ReplayResult
	held []Message
	seen map[string]int // id → index in held
}

func (r *replaying) full() bool { return r.o.Max > 0 && r.res.Matched >= r.o.Max }

// sort counts a received batch and returns the messages to move; the others are held.
func (r *replaying) sort(got []Message) (move []Message) {
	for _, m := range got {
		if i, ok := r.seen[m.ID]; ok {
			r.held[i] = m // its visibility ran out: counted already, keep the newer receipt
			continue
		}
		if r.full() || (r.o.Match != nil && !r.o.Match(m)) {
			r.res.Skipped++
		} else if r.res.Matched++; !r.o.DryRun {
			move = append(move, m)
			continue
		}
		r.seen[m.ID] = len(r.held)
		r.held = append(r.held, m)
	}
	return move
}

// Replay moves the dead letters of dlq that o.Match selects to dst: each batch is sent
// first and deleted from dlq only once the send succeeded, so a crash can duplicate a
// message (jobs are idempotent) but never lose one. Messages it does not move are made
// visible again in dlq when it returns, untouched. With no Match, no Max and no DryRun,
// a backend that can move messages itself (SQS StartMessageMoveTask) does so; when it
// cannot, Replay says why in Fallback and does the loop.
//
// The messages Replay holds stay hidden while it runs: dlq's visibility timeout must
// outlast it.
func Replay(ctx context.Context, dlq, dst Queue, o ReplayOptions) (ReplayResult, error) {
	if o.Max < 0 {
		return ReplayResult{}, fmt.Errorf("replaying %s: max %d is negative", dlq.URL(), o.Max)
	}
	res := ReplayResult{DryRun: o.DryRun, Method: MethodReceive}
	if mv, ok := dlq.(mover); ok && o.Match == nil && o.Max == 0 && !o.DryRun {
		n, err := mv.moveAll(ctx, dst)
		switch {
		case err == nil:
			res.Method, res.Matched, res.Moved = MethodMoveTask, n, n
			return res, nil
		case errors.Is(err, errMoveUnsupported):
			res.Fallback = err.Error()
		default:
			res.Method, res.Matched, res.Moved = MethodMoveTask, n, n
			return res, fmt.Errorf("replaying %s to %s: %w", dlq.URL(), dst.URL(), err)
		}
	}
	outgoing := o.Outgoing
	if outgoing == nil {
		outgoing = func(m Message) Outgoing { return Outgoing{Body: m.Body, DedupID: "replay-" + m.ID} }
	}
	r := replaying{o: o, res: &res, seen: map[string]int{}}
	var errs []error
	for !r.full() {
		if o.Progress != nil {
			o.Progress(res)
		}
		got, err := dlq.Receive(ctx, sqsBatch, peekWait)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if len(got) == 0 {
			break
		}
		move := r.sort(got)
		if len(move) == 0 {
			continue
		}
		out := make([]Outgoing, len(move))
		for i, m := range move {
			out[i] = outgoing(m)
		}
		if err := dst.Send(ctx, out); err != nil {
			// Some may have been sent: they stay in the DLQ as well (a duplicate, not a loss).
			res.Failed += len(move)
			r.held = append(r.held, move...)
			errs = append(errs, err)
			continue
		}
		if err := dlq.Delete(ctx, move); err != nil {
			res.Failed += len(move)
			errs = append(errs, fmt.Errorf("sent %d messages to %s but: %w", len(move), dst.URL(), err))
			continue
		}
		res.Moved += len(move)
	}
	if err := release(context.WithoutCancel(ctx), dlq, r.held); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("replaying %s to %s: %w", dlq.URL(), dst.URL(), err)
	}
	return res, nil
}
