package audit

import (
	"context"
	"sync"
	"time"
)

// Sink stores records. The Batcher calls Write with one batch at a time, never
// concurrently.
type Sink interface {
	Write(ctx context.Context, recs []Record) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, recs []Record) error

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, recs []Record) error { return f(ctx, recs) }

// writeTimeout bounds one batch's write to one sink.
const writeTimeout = 30 * time.Second

// Batcher gathers records and writes them to its sinks in batches: at most Delay after the
// first record of a batch, or as soon as Max records are waiting, and the rest on Close.
// So a busy worker writes one transaction (one PutEvents per ten records) per batch, not
// one per job. A write that fails is reported to OnError and not retried: the worker's
// log has every record's outcome too.
type Batcher struct {
	sinks []Sink
	delay time.Duration
	max   int
	// onError is told of a failed write: the error and how many records it lost.
	onError func(err error, lost int)

	writing sync.Mutex // one write at a time
	mu      sync.Mutex
	buf     []Record
	closed  bool
	pending chan struct{} // a record arrived in an empty buffer
	full    chan struct{} // max records are waiting
	stop    chan struct{}
	done    chan struct{}
}

// NewBatcher starts a Batcher writing to sinks; delay ≤ 0 means one second, max ≤ 0 means
// 100. onError may be nil.
func NewBatcher(delay time.Duration, max int, onError func(err error, lost int), sinks ...Sink) *Batcher {
	if delay <= 0 {
		delay = time.Second
	}
	if max <= 0 {
		max = 100
	}
	if onError == nil {
		onError = func(error, int) {}
	}
	b := &Batcher{sinks: sinks, delay: delay, max: max, onError: onError,
		pending: make(chan struct{}, 1), full: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop()
	return b
}

// Audit queues records for the next batch; it does not wait for the write. After Close it
// writes them at once.
func (b *Batcher) Audit(ctx context.Context, recs ...Record) {
	if len(recs) == 0 {
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.write(recs)
		return
	}
	wasEmpty := len(b.buf) == 0
	b.buf = append(b.buf, recs...)
	n := len(b.buf)
	b.mu.Unlock()
	if wasEmpty {
		signal(b.pending)
	}
	if n >= b.max {
		signal(b.full)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Close writes what is waiting and stops the Batcher. It returns once the last batch is
// written (or failed).
func (b *Batcher) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
}

func (b *Batcher) loop() {
	defer close(b.done)
	for {
		select {
		case <-b.pending:
		case <-b.full:
		case <-b.stop:
			b.flush()
			return
		}
		if !b.isFull() {
			t := time.NewTimer(b.delay)
			select {
			case <-t.C:
			case <-b.full:
			case <-b.stop:
			}
			t.Stop()
		}
		b.flush()
	}
}

func (b *Batcher) isFull() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.buf) >= b.max
}

// flush writes every waiting record, max at a time.
func (b *Batcher) flush() {
	for {
		b.mu.Lock()
		n := min(len(b.buf), b.max)
		batch := b.buf[:n:n]
		b.buf = b.buf[n:]
		if len(b.buf) == 0 {
			b.buf = nil
		}
		b.mu.Unlock()
		if n == 0 {
			return
		}
		b.write(batch)
	}
}

func (b *Batcher) write(recs []Record) {
	b.writing.Lock()
	defer b.writing.Unlock()
	for _, s := range b.sinks {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := s.Write(ctx, recs)
		cancel()
		if err != nil {
			b.onError(err, len(recs))
		}
	}
}
