// Package queue carries job messages from the planner to the workers. One interface,
// Queue, has two backends with the same semantics — visibility timeout, receive count and
// a dead-letter queue: Amazon SQS (standard or FIFO, the DLQ found from the queue's
// RedrivePolicy) and an embedded SQLite file for a single machine. Requeue hands a message
// back as a copy with a fresh receive count, so that a throttled job is not moved to the
// DLQ by the queue's own redrive. The conformance suite in this package runs against both.
// The queue knows bodies and attributes, nothing of EC2.
package queue

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Outgoing is a message to send.
type Outgoing struct {
	Body []byte
	// DedupID and GroupID are used by FIFO queues (MessageDeduplicationId and
	// MessageGroupId); other backends ignore them.
	DedupID string
	GroupID string
}

// Message is a received message. Receipt is what Delete, SetVisibility and DeadLetter
// need; it is only valid while the message is in flight.
type Message struct {
	ID      string
	Receipt string
	Body    []byte
	// Attempts is the receive count, this receive included.
	Attempts int
	// SentAt is when the message was first sent to this queue; a requeued copy keeps the
	// original's.
	SentAt time.Time
	// GroupID is the message group of a message received from an SQS FIFO queue; Requeue
	// sends the copy to the same group.
	GroupID string
	// FirstReceivedAt is when the message was first received, the job's first attempt
	// (SQS: ApproximateFirstReceiveTimestamp); a requeued copy keeps the original's, and
	// DeadLetter carries it to the dead-letter queue. Zero when unknown.
	FirstReceivedAt time.Time
	// Dead-letter attributes, set on messages read from a dead-letter queue. A message
	// moved there by the queue's own redrive (not by snapfleet) has Reason
	// reason.ExhaustedRetries, Attempts from the receive count, no LastError or FailedAt,
	// and FirstReceivedAt only where the backend keeps it (embedded; SQS: the dead
	// letter's own ApproximateFirstReceiveTimestamp, which moto keeps from the jobs queue).
	Reason    string
	LastError string
	FailedAt  time.Time
}

// Stats is an approximate count of a queue's messages.
type Stats struct {
	Visible  int
	InFlight int
	Delayed  int
}

// Total is every message the queue holds.
func (s Stats) Total() int { return s.Visible + s.InFlight + s.Delayed }

// Queue is the contract every backend meets.
type Queue interface {
	// Send enqueues messages, in batches of up to 10 where the backend batches. It returns
	// an error naming how many failed; those that did not fail are sent.
	Send(ctx context.Context, msgs []Outgoing) error
	// Receive waits up to wait for at least one message and returns up to max (≤ 10),
	// each hidden from other receivers for the visibility timeout.
	Receive(ctx context.Context, max int, wait time.Duration) ([]Message, error)
	// Delete removes messages that were handled.
	Delete(ctx context.Context, msgs []Message) error
	// SetVisibility hides a message in flight for d from now: a heartbeat extends it, 0
	// releases it to other receivers at once.
	SetVisibility(ctx context.Context, m Message, d time.Duration) error
	// Requeue hands a message in flight back with a fresh receive count: it sends a copy
	// (same body, same SentAt, FIFO: same group) that becomes visible after d, then deletes
	// m. Send comes before delete, so a failure between them leaves a duplicate, never a
	// loss. The worker uses it for a throttled job close to MaxReceive, which the queue
	// would otherwise move to the dead-letter queue by itself.
	Requeue(ctx context.Context, m Message, d time.Duration) error
	// MaxReceive is the receive count after which the queue moves a message to its
	// dead-letter queue by itself (SQS: the RedrivePolicy's maxReceiveCount; embedded:
	// Options.MaxReceive); 0 means none (no RedrivePolicy, or a dead-letter queue).
	MaxReceive(ctx context.Context) (int, error)
	// DeadLetter moves a message to the dead-letter queue with its body unchanged and the
	// reason, the last error and the attempt count attached, then deletes it here. An
	// empty body (possible only in the embedded queue's file) becomes EmptyBody.
	DeadLetter(ctx context.Context, m Message, reason, lastErr string) error
	// DLQ opens the dead-letter queue of this queue.
	DLQ(ctx context.Context) (Queue, error)
	// Stats counts the messages.
	Stats(ctx context.Context) (Stats, error)
	// URL is the queue's address, as given to Open.
	URL() string
	Close() error
}

// Options tune a backend.
type Options struct {
	// AWS is the SDK configuration for SQS queues; ignored by the embedded queue.
	AWS aws.Config
	// Visibility is the visibility timeout of a receive; 0 means the queue's default
	// (SQS: the queue attribute; embedded: 30 s).
	Visibility time.Duration
	// MaxReceive is the embedded queue's redrive threshold (SQS keeps its own in the
	// RedrivePolicy); 0 means 5.
	MaxReceive int
}

// ErrBadURL is returned for a queue address that is neither an SQS URL nor file:PATH.
var ErrBadURL = errors.New("bad queue URL")

// ErrNoQueue is returned by Open for a file: address whose directory does not exist.
var ErrNoQueue = errors.New("no such queue")

// CheckURL checks the form of a queue address without opening it: file:PATH (the path
// without '?' or '#'; PATH#dlq names its dead-letter queue), or an http(s) SQS queue URL
// scheme://host/ACCOUNT/NAME. Its error wraps ErrBadURL.
func CheckURL(raw string) error {
	switch {
	case strings.HasPrefix(raw, "file:"):
		path := strings.TrimSuffix(strings.TrimPrefix(raw, "file:"), dlqFragment)
		if path == "" {
			return fmt.Errorf("%w %q: file: needs a path", ErrBadURL, raw)
		}
		if strings.ContainsAny(path, "?#") {
			return fmt.Errorf("%w %q: the path may not contain '?' or '#'", ErrBadURL, raw)
		}
	case strings.HasPrefix(raw, "https://"), strings.HasPrefix(raw, "http://"):
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return fmt.Errorf("%w %q: not an SQS queue URL", ErrBadURL, raw)
		}
		if parts := strings.Split(strings.Trim(u.Path, "/"), "/"); len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			return fmt.Errorf("%w %q: want scheme://host/ACCOUNT/NAME", ErrBadURL, raw)
		}
	default:
		return fmt.Errorf("%w %q: want an SQS queue URL or file:PATH", ErrBadURL, raw)
	}
	return nil
}

// Open connects to the queue at raw (CheckURL): file:PATH for the embedded queue, an
// http(s) SQS queue URL otherwise.
func Open(ctx context.Context, raw string, o Options) (Queue, error) {
	if err := CheckURL(raw); err != nil {
		return nil, err
	}
	if path, ok := strings.CutPrefix(raw, "file:"); ok {
		return openEmbedded(ctx, raw, path, o)
	}
	return openSQS(ctx, raw, o)
}
