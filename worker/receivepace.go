package worker

import (
	"math"

	"github.com/snapfleet/snapfleet/internal/job"
)

// Receive pacing: a worker receives no more messages than its lines can hold. Of a scope
// whose line is full (lineCap), a message received is only deferred back to the queue
// (a ChangeMessageVisibility, and a receive, spent for nothing); so while every line is
// full the worker receives nothing until a job starts, and then no more than the lines'
// room, at least one (which may be of a scope it does not hold yet).

// lineCap is how many jobs like j the runner holds in their scope's line, which is held: a
// fair share of the room when many scopes are held, and no more than the buckets and the
// slots can start within holdAhead; at least one. hold and receivable use the same cap (a
// message received for a line's room is never deferred). r.mu is held.
func (r *runner) lineCap(j job.Job) float64 {
	can, _, _ := r.startable(j)
	share := max(float64(cap(r.room))/float64(max(len(r.backlog.ring), 1)), float64(cap(r.slots)))
	return max(min(can, share, r.slotsCanStart()), 1)
}

// receivable is how many messages the lines can take now: maxBatch when a line holds a
// message with nothing to reserve (admitted as soon as a slot is free), what the slots can
// start within holdAhead when no line is held, else the sum of the lines' room, 0 when
// they are all full. r.mu is held.
func (r *runner) receivable() int {
	b := &r.backlog
	if len(b.ring) == 0 {
		return int(min(r.holdable(), maxBatch))
	}
	room := 0.0
	for _, sc := range b.ring {
		line := b.lines[sc]
		if !line[0].ok {
			return maxBatch
		}
		room += max(0, r.lineCap(line[0].j)-float64(len(line)))
	}
	return int(math.Min(math.Floor(room), maxBatch))
}
