package queue

// The dead-letter side of the embedded backend: redrive on receive, dead-lettering and
// requeueing, and the dead-letter queue's handle.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"maragu.dev/goqite"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// deadLetterFields fills m's dead-letter attributes from snapfleet_dead_letter.
func (e *embedded) deadLetterFields(ctx context.Context, tx *sql.Tx, m *Message) error {
	var failedAt, sentAt, firstReceived string
	err := tx.QueryRowContext(ctx, `select reason, last_error, attempts, failed_at, sent_at, first_received from snapfleet_dead_letter where id = ?`, m.ID).
		Scan(&m.Reason, &m.LastError, &m.Attempts, &failedAt, &sentAt, &firstReceived)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		m.Reason = reason.ExhaustedRetries // sent to the DLQ by hand: nothing more is known
		return nil
	case err != nil:
		return fmt.Errorf("reading dead-letter attributes of %s: %w", m.ID, err)
	}
	m.FailedAt = parseTime(failedAt)
	m.FirstReceivedAt = parseTime(firstReceived)
	if t := parseTime(sentAt); !t.IsZero() {
		m.SentAt = t
	}
	return nil
}

// redrive moves the visible messages that were already received maxReceive times to the
// dead-letter queue, as SQS does on a receive.
func (e *embedded) redrive(ctx context.Context, tx *sql.Tx) error {
	now := time.Now().UTC().Format(timeLayout)
	rows, err := tx.QueryContext(ctx, `select id, received, coalesce(created, '') from goqite
		where queue = ? and ? >= timeout and received >= ? order by created limit ?`,
		e.name, now, e.maxReceive, embeddedRedriveMax)
	if err != nil {
		return err
	}
	type exhausted struct {
		id       string
		received int
		created  string
	}
	var ms []exhausted
	for rows.Next() {
		var m exhausted
		if err := rows.Scan(&m.id, &m.received, &m.created); err != nil {
			_ = rows.Close()
			return err
		}
		ms = append(ms, m)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, m := range ms {
		if err := e.moveToDLQ(ctx, tx, m.id, reason.ExhaustedRetries, "", m.received, m.created); err != nil {
			return err
		}
	}
	return nil
}

// EmptyBody is the body a dead letter carries in place of an empty one (or, in a damaged
// file, a NULL one): a body goqite cannot store, and nothing a reader could take for a job.
const EmptyBody = "<empty body>"

// moveToDLQ moves message id of this queue to the dead-letter queue, body unchanged but
// for an empty one, which becomes EmptyBody.
func (e *embedded) moveToDLQ(ctx context.Context, tx *sql.Tx, id, reason, lastErr string, attempts int, created string) error {
	var body []byte
	var first sql.NullString
	if err := tx.QueryRowContext(ctx, `select body, snapfleet_first_received from goqite where queue = ? and id = ?`, e.name, id).
		Scan(&body, &first); err != nil {
		return fmt.Errorf("reading message %s: %w", id, err)
	}
	if len(body) == 0 {
		body = []byte(EmptyBody)
	}
	dead, err := e.dead.SendAndGetIDTx(ctx, tx, goqite.Message{Body: body})
	if err != nil {
		return fmt.Errorf("sending message %s to the dead-letter queue: %w", id, err)
	}
	_, err = tx.ExecContext(ctx, `insert into snapfleet_dead_letter (id, reason, last_error, attempts, failed_at, sent_at, first_received)
		values (?, ?, ?, ?, ?, ?, ?)`,
		string(dead), reason, lastErr, attempts, time.Now().UTC().Format(timeLayout), created, first.String)
	if err != nil {
		return fmt.Errorf("recording why message %s was dead-lettered: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `delete from goqite where queue = ? and id = ?`, e.name, id); err != nil {
		return fmt.Errorf("deleting dead-lettered message %s: %w", id, err)
	}
	return nil
}

func (e *embedded) DeadLetter(ctx context.Context, m Message, reason, lastErr string) error {
	if e.isDLQ {
		return fmt.Errorf("queue %s is a dead-letter queue: cannot dead-letter message %s again", e.URL(), m.ID)
	}
	id, received, err := parseReceipt(m.Receipt)
	if err != nil {
		return fmt.Errorf("dead-lettering message %s of %s: %w", m.ID, e.URL(), err)
	}
	if reason == "" {
		reason = unknownReason
	}
	err = e.inTx(ctx, func(tx *sql.Tx) error {
		var created string
		err := tx.QueryRowContext(ctx, `select coalesce(created, '') from goqite where queue = ? and id = ? and received = ?`, e.name, id, received).Scan(&created)
		if errors.Is(err, sql.ErrNoRows) {
			return e.notInFlight(ctx, tx, id)
		}
		if err != nil {
			return err
		}
		return e.moveToDLQ(ctx, tx, id, reason, attrText(lastErr), received, created)
	})
	if err != nil {
		return fmt.Errorf("dead-lettering message %s of %s: %w", m.ID, e.URL(), err)
	}
	return nil
}

// Requeue replaces m, in one transaction, by a new message with the same body, created
// time (SentAt, and its place in the queue), first receive and a receive count of 0,
// hidden for d. The copy has an id of its own, so no receipt of m can touch it.
func (e *embedded) Requeue(ctx context.Context, m Message, d time.Duration) error {
	if e.isDLQ {
		return fmt.Errorf("queue %s is a dead-letter queue: cannot requeue message %s", e.URL(), m.ID)
	}
	id, received, err := parseReceipt(m.Receipt)
	if err != nil {
		return fmt.Errorf("requeueing message %s of %s: %w", m.ID, e.URL(), err)
	}
	err = e.inTx(ctx, func(tx *sql.Tx) error {
		var body []byte
		var created string
		var first sql.NullString
		err := tx.QueryRowContext(ctx, `select body, coalesce(created, ''), snapfleet_first_received from goqite where queue = ? and id = ? and received = ?`,
			e.name, id, received).Scan(&body, &created, &first)
		if errors.Is(err, sql.ErrNoRows) {
			return e.notInFlight(ctx, tx, id)
		}
		if err != nil {
			return err
		}
		copyID, err := e.q.SendAndGetIDTx(ctx, tx, goqite.Message{Body: body, Delay: max(d, 0)})
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `update goqite set created = ?, snapfleet_first_received = ? where id = ?`,
			created, first, string(copyID)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `delete from goqite where queue = ? and id = ? and received = ?`, e.name, id, received)
		return err
	})
	if err != nil {
		return fmt.Errorf("requeueing message %s of %s: %w", m.ID, e.URL(), err)
	}
	return nil
}

// MaxReceive is Options.MaxReceive (default 5); a dead-letter queue has none.
func (e *embedded) MaxReceive(context.Context) (int, error) {
	if e.isDLQ {
		return 0, nil
	}
	return e.maxReceive, nil
}

// DLQ returns the dead-letter queue in the same file, whose URL is file:PATH#dlq. It
// shares this handle's file: close this one, not the DLQ, when done.
func (e *embedded) DLQ(context.Context) (Queue, error) {
	if e.isDLQ {
		return nil, fmt.Errorf("queue %s is a dead-letter queue: it has no dead-letter queue of its own", e.URL())
	}
	d := *e
	d.name, d.q, d.isDLQ, d.owner = embeddedDead, e.dead, true, false
	return &d, nil
}
