package event

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/queue"
)

// PublishFailures returns q, except that every message it dead-letters is also published
// through p as a snapfleet.JobFailed event. A publishing error is logged; the dead letter
// stands. With a nil p it returns q itself.
func PublishFailures(q queue.Queue, p *Publisher, log zerolog.Logger) queue.Queue {
	if p == nil {
		return q
	}
	return failures{Queue: q, pub: p, log: log}
}

type failures struct {
	queue.Queue
	pub *Publisher
	log zerolog.Logger
}

func (q failures) DeadLetter(ctx context.Context, m queue.Message, reason, lastErr string) error {
	if err := q.Queue.DeadLetter(ctx, m, reason, lastErr); err != nil {
		return err
	}
	f := Failed(m.Body, m.Attempts, reason, lastErr)
	if err := q.pub.Publish(ctx, Outcome{DetailType: DetailJobFailed, Detail: f}); err != nil {
		q.log.Error().Err(err).Str("key", f.Key).Str("reason", reason).Msg("publishing the job failure")
	}
	return nil
}
