package queue_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/snapfleet/snapfleet/queue"
)

// A worker's loop in miniature on the embedded queue: receive, handle, delete, or
// dead-letter what can never succeed.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "snapfleet-example-")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	q, err := queue.Open(ctx, "file:"+filepath.Join(dir, "snapfleet.db"), queue.Options{Visibility: time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	_ = q.Send(ctx, []queue.Outgoing{{Body: []byte(`{"v":1}`)}, {Body: []byte("not json")}})
	msgs, _ := q.Receive(ctx, 10, time.Second)
	for _, m := range msgs {
		if m.Body[0] == '{' {
			_ = q.Delete(ctx, []queue.Message{m})
		} else {
			_ = q.DeadLetter(ctx, m, "invalid_message", "not a job")
		}
	}

	dlq, _ := q.DLQ(ctx)
	dead, _ := dlq.Receive(ctx, 10, time.Second)
	fmt.Printf("%s: %q %s (%s) after %d attempt(s)\n", dlq.URL()[len(dlq.URL())-4:], dead[0].Body, dead[0].Reason, dead[0].LastError, dead[0].Attempts)
	// Output: #dlq: "not json" invalid_message (not a job) after 1 attempt(s)
}
