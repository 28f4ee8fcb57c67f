package worker

// Observation is what Worker.Observe is told, for metrics and health probes: a receive
// from the queue returned (Polled), or a job's message was settled, or at shutdown
// released unsettled (Outcome "released").
type Observation struct {
	// Polled marks a receive: Received messages came back, Err is its error.
	Polled   bool
	Received int
	// Kind, Outcome and Reason of a settled message. Outcome is one of success, skipped,
	// dead_lettered, snoozed, retry, released; Reason is the dead-letter, skip or snooze
	// reason (a throttled snooze has none).
	// Err is the queue's error settling it (a dead letter with an Err did not happen).
	Kind, Outcome, Reason string
	Err                   error
	// Account and Region of the job of a settled or deferred message (empty when its
	// message did not decode), for progress displays.
	Account, Region string
}

// observe tells Worker.Observe, when set.
func (r *runner) observe(o Observation) {
	if r.w.Observe != nil {
		r.w.Observe(o)
	}
}
