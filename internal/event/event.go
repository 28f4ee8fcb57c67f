// Package event reads the events that make snapfleet plan outside its schedule — an EC2
// "Instance State-change Notification" of an instance stopping, a custom
// snapfleet.BackupNow request — and publishes what snapfleet did (run summaries, job
// failures) to an EventBridge bus, so teams route them to chat, tickets or alarms.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/snapfleet/snapfleet/internal/job"
)

// Detail-types snapfleet reads.
const (
	// DetailStateChange is EC2's notification of an instance changing state.
	DetailStateChange = "EC2 Instance State-change Notification"
	// DetailBackupNow asks for an ad-hoc snapshot of the selected volumes.
	DetailBackupNow = "snapfleet.BackupNow"
)

// Kinds of event, as Event.Kind.
const (
	KindStateChange = "state-change"
	KindBackupNow   = "backup-now"
)

// Handles reports whether an event of this detail-type is one Parse reads.
func Handles(detailType string) bool {
	return detailType == DetailStateChange || detailType == DetailBackupNow
}

// SnapshotStates are the instance states whose notification makes snapshots: the
// instance is going down, its disks are quiet.
var SnapshotStates = map[string]bool{"stopping": true, "stopped": true}

// Event is an event the planner acts on.
type Event struct {
	// ID is EventBridge's event id: the job keys carry it, so a second delivery of the
	// same event makes no second snapshot.
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Source     string    `json:"source"`
	DetailType string    `json:"detail_type"`
	Time       time.Time `json:"time,omitzero"`
	// Account and Region of the envelope: where the instance of a state change is.
	Account string `json:"account,omitempty"`
	Region  string `json:"region,omitempty"`
	// Instance and State of a state change.
	Instance string `json:"instance,omitempty"`
	State    string `json:"state,omitempty"`
	// Selector of a BackupNow request.
	Selector *Selector `json:"selector,omitempty"`
}

// Selector picks the volumes of a BackupNow request: those attached to instances in
// Accounts and Regions (empty: the configured ones) carrying every one of Tags, or named in
// Instances. At least one of Tags and Instances must be set: "everything" is a scheduled
// run, not an ad-hoc one.
type Selector struct {
	Accounts  []string          `json:"accounts,omitempty"`
	Regions   []string          `json:"regions,omitempty"`
	Tags      map[string]string `json:"tags,omitempty"`
	Instances []string          `json:"instances,omitempty"`
}

// envelope is EventBridge's event envelope.
type envelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// ErrInvalid is wrapped by every error of Parse: the event can never be planned.
var ErrInvalid = errors.New("invalid event")

// Parse reads an EventBridge event of a detail-type that Handles. The error says what is
// wrong in one line.
func Parse(b []byte) (Event, error) {
	var env envelope
	if err := json.Unmarshal(bytes.TrimSpace(b), &env); err != nil {
		return invalid("not an EventBridge event: %v", err)
	}
	ev := Event{ID: env.ID, Source: env.Source, DetailType: env.DetailType, Account: env.Account, Region: env.Region}
	if !job.ValidEventID(env.ID) {
		return invalid("id %q: want 1 to 64 letters, digits, - or _ (EventBridge's event id)", env.ID)
	}
	if env.Time != "" {
		t, err := time.Parse(time.RFC3339, env.Time)
		if err != nil {
			return invalid("time %q is not RFC 3339", env.Time)
		}
		ev.Time = t.UTC()
	}
	if len(bytes.TrimSpace(env.Detail)) == 0 {
		return invalid("no detail")
	}
	switch env.DetailType {
	case DetailStateChange:
		return parseStateChange(ev, env)
	case DetailBackupNow:
		return parseBackupNow(ev, env)
	default:
		return invalid("detail-type %q: want %q or %q", env.DetailType, DetailStateChange, DetailBackupNow)
	}
}

// invalid is Parse's error: ErrInvalid with what is wrong.
func invalid(format string, args ...any) (Event, error) {
	return Event{}, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// parseStateChange reads the detail of an EC2 instance state-change notification.
func parseStateChange(ev Event, env envelope) (Event, error) {
	ev.Kind = KindStateChange
	if !job.ValidAccount(env.Account) {
		return invalid("account %q is not a 12-digit account id", env.Account)
	}
	if !job.ValidRegion(env.Region) {
		return invalid("region %q is not a region", env.Region)
	}
	var d struct {
		Instance string `json:"instance-id"`
		State    string `json:"state"`
	}
	if err := json.Unmarshal(env.Detail, &d); err != nil {
		return invalid("detail: %v", err)
	}
	if !job.ValidInstanceID(d.Instance) {
		return invalid("detail.instance-id %q is not an instance id", d.Instance)
	}
	if d.State == "" {
		return invalid("detail.state is missing")
	}
	ev.Instance, ev.State = d.Instance, d.State
	return ev, nil
}

// parseBackupNow reads the selector of a snapfleet.BackupNow request, strictly.
func parseBackupNow(ev Event, env envelope) (Event, error) {
	ev.Kind = KindBackupNow
	var s Selector
	dec := json.NewDecoder(bytes.NewReader(env.Detail))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return invalid("detail: %v", err)
	}
	for _, a := range s.Accounts {
		if !job.ValidAccount(a) {
			return invalid("detail.accounts: %q is not a 12-digit account id", a)
		}
	}
	for _, r := range s.Regions {
		if !job.ValidRegion(r) {
			return invalid("detail.regions: %q is not a region", r)
		}
	}
	for _, i := range s.Instances {
		if !job.ValidInstanceID(i) {
			return invalid("detail.instances: %q is not an instance id", i)
		}
	}
	for k := range s.Tags {
		if k == "" || len(k) > 128 {
			return invalid("detail.tags: key %q must be 1 to 128 characters", k)
		}
	}
	if len(s.Tags) == 0 && len(s.Instances) == 0 {
		return invalid("detail: select by tags or instances (an empty selector is a full run: use the schedule)")
	}
	ev.Selector = &s
	return ev, nil
}
