// Package audit is snapfleet's audit trail: one Record for every change snapfleet makes
// or refuses — a snapshot created, found existing, deleted, found gone, skipped with a
// reason, a delete refused, a job dead-lettered — naming the run, the job, the account,
// region and resource, the action, the reason, the time and the process that did it. The
// worker emits one record per settled job; sinks store them (the embedded queue's journal,
// EventBridge). A Batcher gathers records so that a busy worker writes one batch per
// interval, not one per job. It imports only the standard library.
package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Stream is the name of the audit trail's journal stream (queue.Journal).
const Stream = "audit"

// Actions a Record names. A successful job's action is its handler's (created, existed,
// deleted, gone, and those of kinds added later, e.g. copied, archived), unchanged.
const (
	// Skipped: the job was not done and need not be (a protected snapshot, a gone volume).
	Skipped = "skipped"
	// Refused: a delete the live state does not allow (a refused_* reason); nothing deleted.
	Refused = "refused"
	// DeadLettered: the job went to the dead-letter queue with its reason.
	DeadLettered = "dead_lettered"
)

// Record is one entry of the audit trail. Fields that do not apply are empty.
type Record struct {
	// At is when the outcome was settled (the real clock, not --now).
	At time.Time `json:"at"`
	// Run is the planner's run id; Key the job's idempotency key; Kind its kind.
	Run  string `json:"run,omitempty"`
	Key  string `json:"key,omitempty"`
	Kind string `json:"kind,omitempty"`
	// Account, Region and Policy the job acted in.
	Account string `json:"account,omitempty"`
	Region  string `json:"region,omitempty"`
	Policy  string `json:"policy,omitempty"`
	// Snapshot is the snapshot created, deleted or refused; Volume and Instance where it
	// comes from.
	Snapshot string `json:"snapshot,omitempty"`
	Volume   string `json:"volume,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Action is what happened: a handler's action (created, deleted, ...), or Skipped,
	// Refused, DeadLettered.
	Action string `json:"action"`
	// Reason is the skip, refusal or dead-letter reason code (internal/reason).
	Reason string `json:"reason,omitempty"`
	// Error is the error that led to a skip, refusal or dead letter, in one line.
	Error string `json:"error,omitempty"`
	// Message is the job message as received, when it could not be decoded (cut to 1 KiB).
	Message string `json:"message,omitempty"`
	// Host and PID name the process that acted.
	Host string `json:"host"`
	PID  int    `json:"pid"`
}

// Self returns the host name and process id records carry.
func Self() (host string, pid int) {
	return self()
}

var self = sync.OnceValues(func() (string, int) {
	h, err := os.Hostname()
	if err != nil {
		h = "unknown"
	}
	return h, os.Getpid()
})

// Encode is a record's JSON.
func Encode(r Record) ([]byte, error) {
	return json.Marshal(r)
}

// Decode reads a record's JSON strictly: unknown fields, trailing data or a record
// without an action are errors.
func Decode(b []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("decoding an audit record: %w", err)
	}
	if dec.More() {
		return Record{}, fmt.Errorf("decoding an audit record: data after the record")
	}
	if r.Action == "" {
		return Record{}, fmt.Errorf("decoding an audit record: no action")
	}
	return r, nil
}

// Resource is the record's main resource: its snapshot, else its instance, else its volume.
func (r Record) Resource() string {
	switch {
	case r.Snapshot != "":
		return r.Snapshot
	case r.Instance != "":
		return r.Instance
	default:
		return r.Volume
	}
}

// Filter selects records: at or after Since, of Snapshot, of Volume (each when set).
type Filter struct {
	Since    time.Time
	Snapshot string
	Volume   string
}

// Match reports whether r passes f. A volume matches a record of that volume or one whose
// job key names it (a create job's key starts ACCOUNT/REGION/VOLUME/).
func (f Filter) Match(r Record) bool {
	if !f.Since.IsZero() && r.At.Before(f.Since) {
		return false
	}
	if f.Snapshot != "" && r.Snapshot != f.Snapshot && !strings.Contains(r.Key, "/"+f.Snapshot+"/") {
		return false
	}
	if f.Volume != "" && r.Volume != f.Volume && !strings.Contains(r.Key, "/"+f.Volume+"/") {
		return false
	}
	return true
}
