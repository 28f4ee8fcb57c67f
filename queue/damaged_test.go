package queue_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/queue"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// insertRaw puts rows straight into the goqite table of the file at path, as a damaged
// file or a broken producer would: each statement with its args.
func insertRaw(t *testing.T, path string, stmts ...[]any) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s[0].(string), s[1:]...); err != nil {
			t.Fatalf("%s: %v", s[0], err)
		}
	}
}

// deadBody is what the dead-letter queue holds for a message with body b.
func deadBody(b []byte) []byte {
	if len(b) == 0 {
		return []byte(queue.EmptyBody)
	}
	return b
}

// TestEmbeddedEmptyBody: a message with an empty body (x”, which goqite reads back as
// nil) is received, dead-lettered by hand and by the queue's own redrive with the
// placeholder body and its reason, and the message behind it is received every time.
func TestEmbeddedEmptyBody(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "q.db")
	q := openFile(t, path, queue.Options{MaxReceive: 2})
	insertRaw(t, path,
		[]any{`insert into goqite (queue, body) values ('snapfleet', x'')`},
		// Received twice already: the next receive moves it to the DLQ by itself.
		[]any{`insert into goqite (queue, body, received) values ('snapfleet', x'', 2)`})
	send(t, q, "behind")

	ms := receiveN(t, q, 2, 5*time.Second)
	for _, m := range ms {
		switch string(m.Body) {
		case "":
			if err := q.DeadLetter(testCtx(t), m, "invalid_message", "empty body"); err != nil {
				t.Fatalf("DeadLetter of the empty message: %v", err)
			}
		case "behind":
			if err := q.Delete(testCtx(t), []queue.Message{m}); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("received %q", m.Body)
		}
	}
	receiveNone(t, q)
	reasons := map[string]bool{}
	for _, d := range receiveN(t, dlq(t, q), 2, 5*time.Second) {
		if string(d.Body) != queue.EmptyBody {
			t.Errorf("dead letter body %q, want %q", d.Body, queue.EmptyBody)
		}
		reasons[d.Reason] = true
	}
	if !reasons["invalid_message"] || !reasons[reason.ExhaustedRetries] {
		t.Errorf("dead letter reasons %v, want invalid_message and %s", reasons, reason.ExhaustedRetries)
	}
}

// TestEmbeddedDamagedTable: a file whose goqite table was made by hand without goqite's
// constraints (not strict, body and id nullable) holds rows goqite's own table could not:
// a NULL body, a text or integer body, a NULL id. Each is received and dead-lettered, and
// the message behind them all is received.
func TestEmbeddedDamagedTable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "q.db")
	insertRaw(t, path,
		[]any{`create table goqite (
  id text primary key default ('m_' || lower(hex(randomblob(16)))),
  created text default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  updated text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  queue text not null,
  body blob,
  timeout text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  received integer not null default 0,
  priority integer not null default 0)`},
		[]any{`insert into goqite (queue, body) values ('snapfleet', NULL)`},
		[]any{`insert into goqite (queue, body) values ('snapfleet', 'text')`},
		[]any{`insert into goqite (queue, body) values ('snapfleet', 42)`},
		[]any{`insert into goqite (id, queue, body) values (NULL, 'snapfleet', 'no id')`},
		[]any{`insert into goqite (queue, body, created) values ('snapfleet', 'no created', NULL)`},
		[]any{`insert into goqite (queue, body, created) values ('snapfleet', 'behind', '9999-01-01T00:00:00.000Z')`},
	)
	q := openFile(t, path, queue.Options{})
	want := map[string]bool{"": true, "text": true, "42": true, "no id": true, "no created": true, "behind": true}
	for _, m := range receiveN(t, q, len(want), 5*time.Second) {
		if !want[string(m.Body)] {
			t.Fatalf("received %q twice or unasked", m.Body)
		}
		delete(want, string(m.Body))
		if string(m.Body) == "behind" {
			continue
		}
		if err := q.DeadLetter(testCtx(t), m, "invalid_message", "damaged"); err != nil {
			t.Fatalf("DeadLetter of %q: %v", m.Body, err)
		}
	}
	if n := len(receiveN(t, dlq(t, q), 5, 5*time.Second)); n != 5 {
		t.Errorf("%d dead letters, want 5", n)
	}
}

// FuzzEmbeddedDeadLetter: whatever bytes a message's body holds (put in the table
// directly), a receive returns it unchanged beside the message behind it, DeadLetter
// moves it to the DLQ, the queue's own redrive moves an exhausted copy, and the DLQ gives
// back the body (EmptyBody for an empty one) with its reason. No receive fails.
func FuzzEmbeddedDeadLetter(f *testing.F) {
	for _, s := range []string{
		"", "\x00", "\xff\xfe", "not json", `{"v":1}`, "\xed\xa0\x80", "a\x00b",
		`{"v":1,"kind":"snapshot.delete","run":"r\u0000"}`, string(bytes.Repeat([]byte{0x80}, 2048)),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dir, err := os.MkdirTemp("", "fuzz-embedded") // t.TempDir's name holds '#'
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "q.db")
		q, err := queue.Open(context.Background(), "file:"+path, queue.Options{MaxReceive: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		insertRaw(t, path,
			[]any{`insert into goqite (queue, body) values ('snapfleet', ?)`, body},
			[]any{`insert into goqite (queue, body, received) values ('snapfleet', ?, 2)`, body},
			[]any{`insert into goqite (queue, body, created) values ('snapfleet', cast('behind' as blob), '9999-01-01T00:00:00.000Z')`})
		ms, err := q.Receive(context.Background(), 10, 0)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if len(ms) != 2 || !bytes.Equal(ms[0].Body, body) || string(ms[1].Body) != "behind" {
			t.Fatalf("received %d messages, want the body and behind: %+v", len(ms), ms)
		}
		if err := q.DeadLetter(context.Background(), ms[0], "invalid_message", string(body)); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		d, err := q.DLQ(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		dead, err := d.Receive(context.Background(), 10, 0)
		if err != nil {
			t.Fatalf("Receive from the DLQ: %v", err)
		}
		reasons := map[string]int{}
		for _, m := range dead {
			if !bytes.Equal(m.Body, deadBody(body)) {
				t.Errorf("dead letter body %q, want %q", m.Body, deadBody(body))
			}
			reasons[m.Reason]++
		}
		if len(dead) != 2 || reasons["invalid_message"] != 1 || reasons[reason.ExhaustedRetries] != 1 {
			t.Errorf("dead letters by reason %v, want one invalid_message and one %s", reasons, reason.ExhaustedRetries)
		}
	})
}
