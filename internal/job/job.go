// Package job defines the job message that flows from the planner through the queue to
// the workers: version 1 of the wire format in DESIGN.md §5, its strict decoder and the
// job keys that make every job idempotent. It imports only the standard library.
package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Version is the only message version this build understands.
const Version = 1

// Kinds of job. They are stable strings: workers register handlers by them and
// operators filter the dead-letter queue with them.
const (
	KindCreate = "snapshot.create"
	KindDelete = "snapshot.delete"
	// KindCreateInstance snapshots every volume of one instance at one point in time
	// (CreateSnapshots): the jobs of policies with consistency: instance.
	KindCreateInstance = "snapshots.create"
	// KindDrill restores one recovery point into a throw-away volume, waits until it is
	// available and deletes it (snapfleet drill; drill.go).
	KindDrill = "volume.drill"
	// KindCopy copies one snapshot to a disaster-recovery destination (copy.go).
	KindCopy = "snapshot.copy"
	// KindArchive moves one snapshot to the archive tier (copy.go).
	KindArchive = "snapshot.archive"
)

// Kinds are every kind this build handles.
var Kinds = []string{KindCreate, KindCreateInstance, KindDelete, KindDrill, KindCopy, KindArchive}

// MaxSize is the upper bound of an encoded message (DESIGN.md §5).
const MaxSize = 1024

// Job is one unit of work: create a snapshot of one volume (or of all volumes of one
// instance) for one policy period, or delete one expired snapshot. Fields that do not
// apply to a kind are empty.
type Job struct {
	V        int    `json:"v"`
	Kind     string `json:"kind"`
	Key      string `json:"key"`
	Account  string `json:"account"`
	Region   string `json:"region"`
	Policy   string `json:"policy"`
	Volume   string `json:"volume,omitempty"`
	Instance string `json:"instance,omitempty"`
	Device   string `json:"device,omitempty"`
	Name     string `json:"name,omitempty"` // the instance's Name tag (snapshot.create only, optional)
	Snapshot string `json:"snapshot,omitempty"`
	// InstanceTags (snapshot.create and snapshots.create only, optional): the instance tags
	// the policy's tags_from_instance copies onto the snapshots, read by the planner so
	// that the worker needs no DescribeInstances for them; bounded (instancetags.go).
	InstanceTags map[string]string `json:"instance_tags,omitempty"`
	// Drill (volume.drill only) is the drill id its throw-away volume is tagged with.
	Drill string `json:"drill,omitempty"`
	// Duplicate (snapshot.delete only): the planner found the snapshot to be a duplicate
	// creation of its snapfleet:job key (Keeper). A hint: the worker removes it without
	// retention's consent only if its own listing of the key says so too.
	Duplicate bool `json:"duplicate,omitempty"`
	// SourceAccount, SourceRegion and SourceSnapshot (snapshot.copy only) name the
	// snapshot to copy; Account and Region are the destination's.
	SourceAccount  string    `json:"source_account,omitempty"`
	SourceRegion   string    `json:"source_region,omitempty"`
	SourceSnapshot string    `json:"source_snapshot,omitempty"`
	Run            string    `json:"run"`
	PlannedAt      time.Time `json:"planned_at"`
}

// ErrInvalid is wrapped by every decoding and validation error: such a message can never
// succeed and is dead-lettered at once with reason invalid_message.
var ErrInvalid = errors.New("invalid job message")

// MaxName is the longest Name a job carries, in characters: the longest tag value AWS
// takes.
const MaxName = 256

// ValidName reports whether s can be a job's Name: valid UTF-8 of at most MaxName
// characters, none of them a control character.
func ValidName(s string) bool {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxName {
		return false
	}
	return strings.IndexFunc(s, unicode.IsControl) < 0
}

// CreateKey is the idempotency key of a create job: one snapshot of a volume (for
// KindCreateInstance: one set of snapshots of an instance, resource being its id) per
// policy period, the period named by its UTC start.
func CreateKey(account, region, resource, policy string, periodStart time.Time) string {
	return CreateKeys(account, region, policy, periodStart)(resource)
}

// CreateKeys returns CreateKey of account, region, policy and periodStart as a function
// of the resource: a plan asks for the key of every volume of a policy, and formatting
// the whole key each time was a sixth of deciding the creates.
func CreateKeys(account, region, policy string, periodStart time.Time) func(resource string) string {
	prefix, suffix := account+"/"+region+"/", "/"+policy+"/"+periodStart.UTC().Format(time.RFC3339)
	return func(resource string) string { return prefix + resource + suffix }
}

// EventKey is the idempotency key of a create job planned for an event (an EC2
// state-change notification, a snapfleet.BackupNow request): one snapshot of a volume (or
// one set of an instance, resource being its id) per event, however often the event is
// delivered. eventID must be a ValidEventID.
func EventKey(account, region, resource, policy, eventID string) string {
	return fmt.Sprintf("%s/%s/%s/%s/%s%s", account, region, resource, policy, EventPrefix, eventID)
}

// EventPrefix starts the last part of an event create key, where a scheduled key has its
// RFC 3339 period start.
const EventPrefix = "event-"

// ValidEventID reports whether s can name an event in a job key: 1 to 64 letters, digits,
// '-' or '_' (an EventBridge event id is a UUID).
func ValidEventID(s string) bool { return validToken(s) }

// DeleteKey is the idempotency key of a delete job. The planner calls it once per delete
// candidate: it concatenates rather than formats.
func DeleteKey(account, region, snapshot string) string {
	return account + "/" + region + "/" + snapshot + "/delete"
}

// GroupID is the FIFO message group of a job: its account, region and volume (the
// snapshot for a delete job that names no volume, the instance for an instance job), so
// jobs of one volume never run at the same time while those of different volumes do.
func GroupID(j Job) string {
	if j.Kind == KindCreateInstance {
		return j.Account + "/" + j.Region + "/" + j.Instance
	}
	if j.Kind == KindCopy {
		return j.Account + "/" + j.Region + "/" + j.SourceSnapshot
	}
	if j.Volume == "" && j.Snapshot != "" {
		return j.Account + "/" + j.Region + "/" + j.Snapshot
	}
	return j.Account + "/" + j.Region + "/" + j.Volume
}

// Encode validates j and returns its wire form.
func Encode(j Job) ([]byte, error) {
	if err := j.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("encoding job %s: %w", j.Key, err)
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: encoded job %s is %d bytes, over %d", ErrInvalid, j.Key, len(b), MaxSize)
	}
	return b, nil
}

// Decode parses a message strictly: unknown fields, trailing data, an unknown version or
// kind, a missing field or a malformed id all return an error wrapping ErrInvalid.
func Decode(b []byte) (Job, error) {
	var j Job
	if len(b) > MaxSize {
		return j, fmt.Errorf("%w: %d bytes, over %d", ErrInvalid, len(b), MaxSize)
	}
	// encoding/json would turn each bad byte into U+FFFD and carry on; SQS refuses such a
	// body when it is sent, the embedded queue does not.
	if !utf8.Valid(b) {
		return j, fmt.Errorf("%w: not valid UTF-8", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Job{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return Job{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	if err := checkKeys(b); err != nil {
		return Job{}, err
	}
	if err := j.Validate(); err != nil {
		return Job{}, err
	}
	return j, nil
}

// wireNames are the JSON field names of Job, exactly as spelled in its struct tags.
var wireNames = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeFor[Job]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		m[name] = true
	}
	return m
}()

// checkKeys rejects what encoding/json lets through: a key that matches a field only
// case-insensitively ("Kind") and a key given twice (the last one silently wins). b is
// already known to hold exactly one valid JSON value.
func checkKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("%w: not a JSON object", ErrInvalid)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		key, _ := tok.(string)
		if !wireNames[key] {
			return fmt.Errorf("%w: unknown field %q", ErrInvalid, key)
		}
		if seen[key] {
			return fmt.Errorf("%w: duplicate field %q", ErrInvalid, key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	return nil
}

// Validate checks every field of j against the contract of its kind.
func (j Job) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	if j.V != Version {
		return bad("v", "unknown version %d", j.V)
	}
	if !ValidAccount(j.Account) {
		return bad("account", "%q is not a 12-digit account id", j.Account)
	}
	if !ValidRegion(j.Region) {
		return bad("region", "%q is not a region", j.Region)
	}
	if !ValidPolicyName(j.Policy) {
		return bad("policy", "%q is not a policy name", j.Policy)
	}
	if j.Run == "" || len(j.Run) > 64 || strings.IndexFunc(j.Run, unicode.IsControl) >= 0 {
		return bad("run", "missing, longer than 64 or with a control character")
	}
	if j.PlannedAt.IsZero() {
		return bad("planned_at", "missing")
	}
	if j.Drill != "" && j.Kind != KindDrill {
		return bad("drill", "not allowed in %s", j.Kind)
	}
	switch j.Kind {
	case KindDrill:
		if err := checkDrill(j); err != nil {
			return err
		}
	case KindCreate:
		if !ValidVolumeID(j.Volume) {
			return bad("volume", "%q is not a volume id", j.Volume)
		}
		// The instance and the device name the snapshot and its tags (DESIGN.md §4).
		if !ValidInstanceID(j.Instance) {
			return bad("instance", "%q is not an instance id", j.Instance)
		}
		if !validDevice(j.Device) {
			return bad("device", "%q is not a device name", j.Device)
		}
		if !ValidName(j.Name) {
			return bad("name", "not valid UTF-8, longer than %d characters or with a control character", MaxName)
		}
		if j.Snapshot != "" || j.Duplicate {
			return bad("snapshot", "snapshot and duplicate are not allowed in %s", j.Kind)
		}
		if err := checkInstanceTags(j.InstanceTags); err != nil {
			return err
		}
		if err := checkCreateKey(j, j.Volume, "volume"); err != nil {
			return err
		}
	case KindCreateInstance:
		if !ValidInstanceID(j.Instance) {
			return bad("instance", "%q is not an instance id", j.Instance)
		}
		if j.Volume != "" || j.Device != "" || j.Snapshot != "" || j.Name != "" || j.Duplicate {
			return bad("volume", "volume, device, name, snapshot and duplicate are not allowed in %s (the worker reads the instance)", j.Kind)
		}
		if err := checkInstanceTags(j.InstanceTags); err != nil {
			return err
		}
		if err := checkCreateKey(j, j.Instance, "instance"); err != nil {
			return err
		}
	case KindDelete:
		if !ValidSnapshotID(j.Snapshot) {
			return bad("snapshot", "%q is not a snapshot id", j.Snapshot)
		}
		if j.Volume != "" && !ValidVolumeID(j.Volume) {
			return bad("volume", "%q is not a volume id", j.Volume)
		}
		if j.Instance != "" || j.Device != "" || j.Name != "" || j.InstanceTags != nil {
			return bad("instance", "instance, device, name and instance_tags are not allowed in %s", j.Kind)
		}
		if j.Key != DeleteKey(j.Account, j.Region, j.Snapshot) {
			return bad("key", "%q is not %q", j.Key, DeleteKey(j.Account, j.Region, j.Snapshot))
		}
	case KindCopy, KindArchive:
		return j.validateCopyArchive()
	default:
		return bad("kind", "unknown kind %q", j.Kind)
	}
	if j.SourceAccount != "" || j.SourceRegion != "" || j.SourceSnapshot != "" {
		return bad("source_snapshot", "source fields are allowed in %s only", KindCopy)
	}
	return nil
}

// checkCreateKey checks that a create job's key is CreateKey or EventKey of its account,
// region, resource (named what) and policy.
func checkCreateKey(j Job, resource, what string) error {
	prefix := strings.Join([]string{j.Account, j.Region, resource, j.Policy}, "/") + "/"
	period, ok := strings.CutPrefix(j.Key, prefix)
	if !ok {
		return fmt.Errorf("%w: key: %q does not match account/region/%s/policy/period", ErrInvalid, j.Key, what)
	}
	if id, ok := strings.CutPrefix(period, EventPrefix); ok {
		if !ValidEventID(id) {
			return fmt.Errorf("%w: key: %q has no valid event id", ErrInvalid, j.Key)
		}
	} else if _, err := time.Parse(time.RFC3339, period); err != nil {
		return fmt.Errorf("%w: key: %q has no RFC 3339 period start or event-<id>", ErrInvalid, j.Key)
	}
	return nil
}
