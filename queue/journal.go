package queue

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Record is one entry of a journal stream: when it happened and what, as a JSON object.
type Record struct {
	// Seq orders the records of a file; Append ignores it, Read sets it.
	Seq  int64
	At   time.Time
	Body []byte
}

// Journal is an append-only log kept beside a queue, in named streams: the audit trail
// of what snapfleet changed ("audit") and drill results ("drill"). The embedded queue
// keeps it in its file, so that a single machine needs nothing else; SQS keeps none (a
// fleet sends the same records as EventBridge events).
type Journal interface {
	// Append adds records to stream in one transaction.
	Append(ctx context.Context, stream string, recs ...Record) error
	// Read calls fn for every record of stream at or after since, oldest first, and stops
	// at fn's first error, which it returns.
	Read(ctx context.Context, stream string, since time.Time, fn func(Record) error) error
}

// JournalOf returns q's journal, or false when q's backend keeps none.
func JournalOf(q Queue) (Journal, bool) {
	j, ok := q.(Journal)
	return j, ok
}

func (e *embedded) Append(ctx context.Context, stream string, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	err := e.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range recs {
			at := r.At.UTC().Format(timeLayout)
			if _, err := tx.ExecContext(ctx, `insert into snapfleet_journal (stream, at, body) values (?, ?, ?)`, stream, at, r.Body); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("appending %d records to journal %s of %s: %w", len(recs), stream, e.url, err)
	}
	return nil
}

func (e *embedded) Read(ctx context.Context, stream string, since time.Time, fn func(Record) error) error {
	rows, err := e.db.QueryContext(ctx,
		`select seq, at, body from snapfleet_journal where stream = ? and at >= ? order by at, seq`,
		stream, since.UTC().Format(timeLayout))
	if err != nil {
		return fmt.Errorf("reading journal %s of %s: %w", stream, e.url, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r Record
		var at string
		if err := rows.Scan(&r.Seq, &at, &r.Body); err != nil {
			return fmt.Errorf("reading journal %s of %s: %w", stream, e.url, err)
		}
		r.At = parseTime(at)
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading journal %s of %s: %w", stream, e.url, err)
	}
	return nil
}
