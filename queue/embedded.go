package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"maragu.dev/goqite"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The embedded queue keeps its messages in goqite's table in one SQLite file: the jobs
// queue and its dead-letter queue are two goqite queue names, goqite's table has a column
// of snapfleet's for a message's first receive, and snapfleet_dead_letter holds what a
// dead letter carries besides its body.
const (
	embeddedMain       = "snapfleet"
	embeddedDead       = "snapfleet-dlq"
	defaultVisibility  = 30 * time.Second
	defaultMaxReceive  = 5
	embeddedPoll       = 50 * time.Millisecond
	embeddedBusyRetry  = 20
	embeddedRedriveMax = 100 // messages moved to the DLQ per receive
	// timeLayout is goqite's: UTC with milliseconds, so that text order is time order.
	timeLayout = "2006-01-02T15:04:05.000Z07:00"
)

// schema is goqite v0.4.0's schema_sqlite.sql, made idempotent, plus snapfleet's own
// dead-letter table and journal. columns are added to a file made before they were (goqite names the
// columns it writes, so one more of its table is left alone).
var schema = []string{
	`create table if not exists goqite (
  id text primary key default ('m_' || lower(hex(randomblob(16)))),
  created text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  updated text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  queue text not null,
  body blob not null,
  timeout text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  received integer not null default 0,
  priority integer not null default 0
) strict`,
	`create trigger if not exists goqite_updated_timestamp after update on goqite begin
  update goqite set updated = strftime('%Y-%m-%dT%H:%M:%fZ') where id = old.id;
end`,
	`create index if not exists goqite_queue_priority_created_idx on goqite (queue, priority desc, created)`,
	`create table if not exists snapfleet_dead_letter (
  id text primary key,
  reason text not null,
  last_error text not null,
  attempts integer not null,
  failed_at text not null,
  sent_at text not null,
  first_received text not null default ''
) strict`,
	// The journal (journal.go): append-only records by stream.
	`create table if not exists snapfleet_journal (
  seq integer primary key autoincrement,
  stream text not null,
  at text not null,
  body blob not null
)`,
	`create index if not exists snapfleet_journal_stream_at_idx on snapfleet_journal (stream, at)`,
}

// columns are added by openEmbedded where a file lacks them: table, column, definition.
var columns = [][3]string{
	// When a message of the jobs queue was first received: the job's first attempt.
	{"goqite", "snapfleet_first_received", "text"},
	{"snapfleet_dead_letter", "first_received", "text not null default ''"},
}

type embedded struct {
	db         *sql.DB
	url        string
	name       string        // goqite queue this handle reads
	q          *goqite.Queue // that queue
	dead       *goqite.Queue // the dead-letter queue
	isDLQ      bool
	owner      bool // Close closes db
	maxReceive int
	visibility time.Duration
}

// dlqFragment marks the URL of an embedded dead-letter queue: file:PATH#dlq.
const dlqFragment = "#dlq"

func openEmbedded(ctx context.Context, url, path string, o Options) (Queue, error) {
	if p, ok := strings.CutSuffix(path, dlqFragment); ok {
		// The DLQ's own URL, as its URL() gives it: open the file, hand out the DLQ.
		q, err := openEmbedded(ctx, strings.TrimSuffix(url, dlqFragment), p, o)
		if err != nil {
			return nil, err
		}
		d, _ := q.DLQ(ctx)
		d.(*embedded).owner = true
		return d, nil
	}
	if dir := filepath.Dir(path); !isDir(dir) {
		return nil, fmt.Errorf("%w %s: directory %s does not exist", ErrNoQueue, url, dir)
	}
	// WAL lets readers and one writer share the file across processes; every transaction
	// takes the write lock at BEGIN (immediate), so two writers never deadlock on a lock
	// upgrade, and waits for it up to the busy timeout.
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening queue %s: %w", url, err)
	}
	// SQLite serialises writers anyway; one connection per process queues them in Go
	// instead of in SQLite's sleeping busy handler.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	visibility := o.Visibility
	if visibility <= 0 {
		visibility = defaultVisibility
	}
	maxReceive := o.MaxReceive
	if maxReceive <= 0 {
		maxReceive = defaultMaxReceive
	}
	e := &embedded{
		db: db, url: url, name: embeddedMain, owner: true, maxReceive: maxReceive, visibility: visibility,
		// goqite leaves a message received maxReceive times in place; Receive moves those
		// to the dead-letter queue first.
		q:    goqite.New(goqite.NewOpts{DB: db, Name: embeddedMain, MaxReceive: maxReceive, Timeout: visibility}),
		dead: goqite.New(goqite.NewOpts{DB: db, Name: embeddedDead, MaxReceive: math.MaxInt32, Timeout: visibility}),
	}
	err = e.inTx(ctx, func(tx *sql.Tx) error {
		for _, stmt := range schema {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		for _, c := range columns {
			if err := addColumn(ctx, tx, c[0], c[1], c[2]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("creating the schema of queue %s: %w", url, err)
	}
	return e, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// addColumn adds column to table unless it has it.
func addColumn(ctx context.Context, tx *sql.Tx, table, column, def string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `select count(*) from pragma_table_info(?) where name = ?`, table, column).Scan(&n); err != nil {
		return fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`alter table %s add column %s %s`, table, column, def)); err != nil {
		return fmt.Errorf("adding column %s to %s: %w", column, table, err)
	}
	return nil
}

func (e *embedded) URL() string {
	if e.isDLQ {
		return e.url + dlqFragment
	}
	return e.url
}

// Close closes the file. The DLQ handle shares its parent's file: closing it does nothing.
func (e *embedded) Close() error {
	if !e.owner {
		return nil
	}
	return e.db.Close()
}

// inTx runs fn in a transaction, again when SQLite reports the file busy or locked
// beyond its busy timeout.
func (e *embedded) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := e.tx(ctx, fn)
		if err == nil || !isBusy(err) || attempt >= embeddedBusyRetry {
			return err
		}
		wait := time.Duration(attempt)*10*time.Millisecond + rand.N(20*time.Millisecond)
		if err := sleep(ctx, min(wait, 250*time.Millisecond)); err != nil {
			return err
		}
	}
}

func (e *embedded) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff
	return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
}

func (e *embedded) Send(ctx context.Context, msgs []Outgoing) error {
	err := e.inTx(ctx, func(tx *sql.Tx) error {
		for _, m := range msgs {
			body := m.Body
			if body == nil {
				body = []byte{} // goqite's body column is not null
			}
			if _, err := e.q.SendAndGetIDTx(ctx, tx, goqite.Message{Body: body}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sending to %s: %d of %d messages failed: %w", e.URL(), len(msgs), len(msgs), err)
	}
	return nil
}

func (e *embedded) Receive(ctx context.Context, n int, wait time.Duration) ([]Message, error) {
	n = min(max(n, 1), sqsBatch)
	deadline := time.Now().Add(wait)
	for {
		msgs, err := e.receive(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("receiving from %s: %w", e.URL(), err)
		}
		left := time.Until(deadline)
		if len(msgs) > 0 || left <= 0 {
			return msgs, nil
		}
		if err := sleep(ctx, min(embeddedPoll, left)); err != nil {
			return nil, fmt.Errorf("receiving from %s: %w", e.URL(), err)
		}
	}
}

func (e *embedded) receive(ctx context.Context, n int) ([]Message, error) {
	var msgs []Message
	err := e.inTx(ctx, func(tx *sql.Tx) error {
		msgs = msgs[:0]
		if err := e.nameNullIDs(ctx, tx); err != nil {
			return err
		}
		if !e.isDLQ {
			if err := e.redrive(ctx, tx); err != nil {
				return fmt.Errorf("moving messages received %d times to the dead-letter queue: %w", e.maxReceive, err)
			}
		}
		for len(msgs) < n {
			gm, err := e.q.ReceiveTx(ctx, tx)
			if err != nil {
				return err
			}
			if gm == nil {
				break
			}
			m := Message{ID: string(gm.ID), Body: gm.Body}
			var created string
			var first sql.NullString
			if err := tx.QueryRowContext(ctx, `select received, coalesce(created, ''), snapfleet_first_received from goqite where id = ?`, gm.ID).
				Scan(&m.Attempts, &created, &first); err != nil {
				return err
			}
			m.Receipt = receipt(m.ID, m.Attempts)
			m.SentAt = parseTime(created)
			if e.isDLQ {
				if err := e.deadLetterFields(ctx, tx, &m); err != nil {
					return err
				}
				msgs = append(msgs, m)
				continue
			}
			if !first.Valid {
				first.String = time.Now().UTC().Format(timeLayout)
				if _, err := tx.ExecContext(ctx, `update goqite set snapfleet_first_received = ? where id = ?`, first.String, gm.ID); err != nil {
					return err
				}
			}
			m.FirstReceivedAt = parseTime(first.String)
			msgs = append(msgs, m)
		}
		return nil
	})
	return msgs, err
}

// nameNullIDs gives an id to this queue's messages that have none. goqite's own table
// cannot hold such a row, but a file made by hand (not strict) can: goqite would pick it
// first on every receive and then fail to find it by its id, so that no message behind it
// were ever received.
func (e *embedded) nameNullIDs(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `update goqite set id = 'm_' || lower(hex(randomblob(16))) where id is null and queue = ?`, e.name)
	if err != nil {
		return fmt.Errorf("naming messages without an id: %w", err)
	}
	return nil
}

// receipt is a message id and its receive count: a receipt from an earlier receive no
// longer matches once someone else has received the message again.
func receipt(id string, received int) string { return id + "/" + strconv.Itoa(received) }

func parseReceipt(r string) (id string, received int, err error) {
	i := strings.LastIndexByte(r, '/')
	if i > 0 {
		received, err = strconv.Atoi(r[i+1:])
		if err == nil {
			return r[:i], received, nil
		}
	}
	return "", 0, fmt.Errorf("bad receipt %q", r)
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// held reports whether message id exists in this queue (under some receipt).
func (e *embedded) held(ctx context.Context, tx *sql.Tx, id string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `select count(*) from goqite where queue = ? and id = ?`, e.name, id).Scan(&n)
	return n > 0, err
}

func (e *embedded) Delete(ctx context.Context, msgs []Message) error {
	stale := 0
	err := e.inTx(ctx, func(tx *sql.Tx) error {
		stale = 0
		for _, m := range msgs {
			id, received, err := parseReceipt(m.Receipt)
			if err != nil {
				return fmt.Errorf("message %s: %w", m.ID, err)
			}
			res, err := tx.ExecContext(ctx, `delete from goqite where queue = ? and id = ? and received = ?`, e.name, id, received)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				// Gone already is success; received again by someone else is not.
				if held, err := e.held(ctx, tx, id); err != nil {
					return err
				} else if held {
					stale++
				}
				continue
			}
			if e.isDLQ {
				if _, err := tx.ExecContext(ctx, `delete from snapfleet_dead_letter where id = ?`, id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting from %s: %w", e.URL(), err)
	}
	if stale > 0 {
		return fmt.Errorf("deleting from %s: %d of %d messages were not deleted: their visibility timeout ran out and they were received again", e.URL(), stale, len(msgs))
	}
	return nil
}

func (e *embedded) SetVisibility(ctx context.Context, m Message, d time.Duration) error {
	id, received, err := parseReceipt(m.Receipt)
	if err != nil {
		return fmt.Errorf("setting visibility of message %s in %s: %w", m.ID, e.URL(), err)
	}
	timeout := time.Now().Add(max(d, 0)).UTC().Format(timeLayout)
	err = e.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `update goqite set timeout = ? where queue = ? and id = ? and received = ?`, timeout, e.name, id, received)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return e.notInFlight(ctx, tx, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("setting visibility of message %s in %s to %s: %w", m.ID, e.URL(), d, err)
	}
	return nil
}

func (e *embedded) notInFlight(ctx context.Context, tx *sql.Tx, id string) error {
	held, err := e.held(ctx, tx, id)
	if err != nil {
		return err
	}
	if held {
		return errors.New("the receipt is stale: the message was received again")
	}
	return errors.New("the message is no longer in the queue")
}

func (e *embedded) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	now := time.Now().UTC().Format(timeLayout)
	err := e.inTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `select
			coalesce(sum(timeout <= ?1), 0),
			coalesce(sum(timeout > ?1 and received > 0), 0),
			coalesce(sum(timeout > ?1 and received = 0), 0)
			from goqite where queue = ?2`, now, e.name).Scan(&s.Visible, &s.InFlight, &s.Delayed)
	})
	if err != nil {
		return Stats{}, fmt.Errorf("counting messages of %s: %w", e.URL(), err)
	}
	return s, nil
}
