package job

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	createMsg = `{"v":1,"kind":"snapshot.create","key":"111111111111/us-east-1/vol-0abc1234/daily/2026-11-22T00:00:00Z",` +
		`"account":"111111111111","region":"us-east-1","policy":"daily",` +
		`"volume":"vol-0abc1234","instance":"i-0abc1234","device":"/dev/xvda","run":"r1","planned_at":"2026-11-22T01:00:03Z"}`
	deleteMsg = `{"v":1,"kind":"snapshot.delete","key":"111111111111/us-east-1/snap-0abc1234/delete",` +
		`"account":"111111111111","region":"us-east-1","policy":"daily","snapshot":"snap-0abc1234","volume":"vol-0abc1234",` +
		`"run":"r1","planned_at":"2026-11-22T01:00:03Z"}`
	instanceMsg = `{"v":1,"kind":"snapshots.create","key":"111111111111/us-east-1/i-0abc1234/daily/2026-11-22T00:00:00Z",` +
		`"account":"111111111111","region":"us-east-1","policy":"daily","instance":"i-0abc1234","run":"r1","planned_at":"2026-11-22T01:00:03Z"}`
)

var plannedAt = time.Date(2026, 11, 22, 1, 0, 3, 0, time.UTC)

func validCreate() Job {
	return Job{
		V: Version, Kind: KindCreate,
		Key:     CreateKey("111111111111", "us-east-1", "vol-0abc1234", "daily", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)),
		Account: "111111111111", Region: "us-east-1", Policy: "daily",
		Volume: "vol-0abc1234", Instance: "i-0abc1234", Device: "/dev/xvda",
		Run: "r1", PlannedAt: plannedAt,
	}
}

func validInstance() Job {
	return Job{
		V: Version, Kind: KindCreateInstance,
		Key:     CreateKey("111111111111", "us-east-1", "i-0abc1234", "daily", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)),
		Account: "111111111111", Region: "us-east-1", Policy: "daily", Instance: "i-0abc1234",
		Run: "r1", PlannedAt: plannedAt,
	}
}

func validDelete() Job {
	return Job{
		V: Version, Kind: KindDelete,
		Key:     DeleteKey("111111111111", "us-east-1", "snap-0abc1234"),
		Account: "111111111111", Region: "us-east-1", Policy: "daily",
		Snapshot: "snap-0abc1234", Volume: "vol-0abc1234",
		Run: "r1", PlannedAt: plannedAt,
	}
}

// replace returns msg with the first occurrence of old replaced by new, and fails when
// old is absent so that a table row cannot silently test the valid message.
func replace(t *testing.T, msg, old, new string) []byte {
	t.Helper()
	if !strings.Contains(msg, old) {
		t.Fatalf("test bug: %q not in message", old)
	}
	return []byte(strings.Replace(msg, old, new, 1))
}

func TestDecodeValid(t *testing.T) {
	t.Parallel()
	long := "vol-0123456789abcdef0"
	longSnap := "snap-0123456789abcdef0"
	tests := []struct {
		name string
		msg  string
		want Job
	}{
		{"create", createMsg, validCreate()},
		{"delete", deleteMsg, validDelete()},
		{"instance", instanceMsg, validInstance()},
		{"instance for an event",
			strings.Replace(instanceMsg, `/daily/2026-11-22T00:00:00Z"`, `/daily/event-e1"`, 1),
			func() Job {
				j := validInstance()
				j.Key = EventKey(j.Account, j.Region, j.Instance, j.Policy, "e1")
				return j
			}()},
		{"create with 17-hex volume id",
			strings.ReplaceAll(createMsg, "vol-0abc1234", long),
			func() Job {
				j := validCreate()
				j.Volume = long
				j.Key = CreateKey(j.Account, j.Region, long, j.Policy, time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
				return j
			}()},
		{"delete with 17-hex ids",
			strings.ReplaceAll(strings.ReplaceAll(deleteMsg, "snap-0abc1234", longSnap), "vol-0abc1234", long),
			func() Job {
				j := validDelete()
				j.Snapshot, j.Volume = longSnap, long
				j.Key = DeleteKey(j.Account, j.Region, longSnap)
				return j
			}()},
		{"create with the instance's name",
			strings.Replace(createMsg, `"device":"/dev/xvda",`, `"device":"/dev/xvda","name":"web-1",`, 1),
			func() Job { j := validCreate(); j.Name = "web-1"; return j }()},
		{"create with a long unicode name",
			strings.Replace(createMsg, `"device":"/dev/xvda",`, `"device":"/dev/xvda","name":"`+strings.Repeat("é", MaxName)+`",`, 1),
			func() Job { j := validCreate(); j.Name = strings.Repeat("é", MaxName); return j }()},
		{"delete of a duplicate",
			strings.Replace(deleteMsg, `"run":`, `"duplicate":true,"run":`, 1),
			func() Job { j := validDelete(); j.Duplicate = true; return j }()},
		{"delete without volume",
			strings.Replace(deleteMsg, `,"volume":"vol-0abc1234"`, "", 1),
			func() Job { j := validDelete(); j.Volume = ""; return j }()},
		{"xvd device name",
			strings.Replace(createMsg, `"/dev/xvda"`, `"xvdf"`, 1),
			func() Job { j := validCreate(); j.Device = "xvdf"; return j }()},
		{"nvme device name",
			strings.Replace(createMsg, `"/dev/xvda"`, `"/dev/nvme1n1"`, 1),
			func() Job { j := validCreate(); j.Device = "/dev/nvme1n1"; return j }()},
		{"create for an event",
			strings.Replace(createMsg, `/daily/2026-11-22T00:00:00Z"`, `/daily/event-7bf73129-1428-4cd3-a780-95db273d1602"`, 1),
			func() Job {
				j := validCreate()
				j.Key = EventKey(j.Account, j.Region, j.Volume, j.Policy, "7bf73129-1428-4cd3-a780-95db273d1602")
				return j
			}()},
		{"whitespace around the object",
			"\n  " + createMsg + "\n",
			validCreate()},
		{"other region partition",
			strings.ReplaceAll(deleteMsg, "us-east-1", "ap-southeast-2"),
			func() Job {
				j := validDelete()
				j.Region = "ap-southeast-2"
				j.Key = DeleteKey(j.Account, j.Region, j.Snapshot)
				return j
			}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Decode([]byte(tt.msg))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !equal(got, tt.want) {
				t.Fatalf("Decode =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  []byte
		// field is a word the error must name, so an operator reading the DLQ knows why.
		field string
	}{
		{"empty", []byte(""), "EOF"},
		{"not JSON", []byte("snapshot please"), "invalid"},
		{"JSON array", []byte(`[` + createMsg + `]`), "cannot unmarshal"},
		{"JSON null", []byte(`null`), "object"},
		{"JSON string", []byte(`"snapshot.create"`), "cannot unmarshal"},
		{"unknown version 2", replace(t, createMsg, `"v":1`, `"v":2`), "version"},
		{"version 0", replace(t, createMsg, `"v":1`, `"v":0`), "version"},
		{"version missing", replace(t, createMsg, `"v":1,`, ``), "version"},
		{"version as string", replace(t, createMsg, `"v":1`, `"v":"1"`), "cannot unmarshal"},
		{"unknown kind", replace(t, createMsg, `snapshot.create`, `snapshot.restore`), "kind"},
		{"kind missing", replace(t, createMsg, `"kind":"snapshot.create",`, ``), "kind"},
		{"kind case", replace(t, createMsg, `snapshot.create`, `Snapshot.Create`), "kind"},
		{"account missing", replace(t, createMsg, `"account":"111111111111",`, ``), "account"},
		{"account 11 digits", []byte(strings.ReplaceAll(createMsg, "111111111111", "11111111111")), "account"},
		{"account as number", replace(t, createMsg, `"account":"111111111111"`, `"account":111111111111`), "cannot unmarshal"},
		{"account with letters", []byte(strings.ReplaceAll(createMsg, "111111111111", "11111111111a")), "account"},
		{"region missing", replace(t, createMsg, `"region":"us-east-1",`, ``), "region"},
		{"region bad", []byte(strings.ReplaceAll(createMsg, "us-east-1", "US-EAST-1")), "region"},
		{"policy missing", replace(t, createMsg, `"policy":"daily",`, ``), "policy"},
		{"policy bad", []byte(strings.ReplaceAll(createMsg, "daily", "Daily")), "policy"},
		{"policy too long", []byte(strings.ReplaceAll(createMsg, "daily", strings.Repeat("d", 65))), "policy"},
		{"run missing", replace(t, createMsg, `"run":"r1",`, ``), "run"},
		{"run too long", replace(t, createMsg, `"run":"r1"`, `"run":"`+strings.Repeat("r", 65)+`"`), "run"},
		{"planned_at missing", replace(t, createMsg, `,"planned_at":"2026-11-22T01:00:03Z"`, ``), "planned_at"},
		{"planned_at bad", replace(t, createMsg, `"2026-11-22T01:00:03Z"`, `"yesterday"`), "cannot parse"},
		{"create volume missing", replace(t, createMsg, `"volume":"vol-0abc1234",`, ``), "volume"},
		{"create volume upper hex", []byte(strings.ReplaceAll(createMsg, "vol-0abc1234", "vol-0ABC1234")), "volume"},
		{"create volume too short", []byte(strings.ReplaceAll(createMsg, "vol-0abc1234", "vol-0abc123")), "volume"},
		{"create volume too long", []byte(strings.ReplaceAll(createMsg, "vol-0abc1234", "vol-0123456789abcdef01")), "volume"},
		{"create volume wrong prefix", []byte(strings.ReplaceAll(createMsg, "vol-0abc1234", "snap-0abc1234")), "volume"},
		{"create instance missing", replace(t, createMsg, `"instance":"i-0abc1234",`, ``), "instance"},
		{"create instance empty", replace(t, createMsg, `"instance":"i-0abc1234"`, `"instance":""`), "instance"},
		{"create device missing", replace(t, createMsg, `"device":"/dev/xvda",`, ``), "device"},
		{"create device empty", replace(t, createMsg, `"device":"/dev/xvda"`, `"device":""`), "device"},
		{"create without instance and device", replace(t, createMsg, `"instance":"i-0abc1234","device":"/dev/xvda",`, ``), "instance"},
		{"create instance bad", replace(t, createMsg, `"i-0abc1234"`, `"i-xyz"`), "instance"},
		{"create device bad", replace(t, createMsg, `"/dev/xvda"`, `"/etc/passwd"`), "device"},
		{"create device traversal", replace(t, createMsg, `"/dev/xvda"`, `"/dev/../etc"`), "device"},
		{"create name too long", replace(t, createMsg, `"device":"/dev/xvda",`, `"device":"/dev/xvda","name":"`+strings.Repeat("n", MaxName+1)+`",`), "name"},
		{"create name with a control character", replace(t, createMsg, `"device":"/dev/xvda",`, `"device":"/dev/xvda","name":"web\n1",`), "name"},
		{"create name not a string", replace(t, createMsg, `"device":"/dev/xvda",`, `"device":"/dev/xvda","name":1,`), "cannot unmarshal"},
		{"create name in other case", replace(t, createMsg, `"device":"/dev/xvda",`, `"device":"/dev/xvda","Name":"web-1",`), "unknown field"},
		{"create with snapshot", replace(t, createMsg, `"run":"r1"`, `"snapshot":"snap-0abc1234","run":"r1"`), "snapshot"},
		{"create key other volume", replace(t, createMsg, `111111111111/us-east-1/vol-0abc1234/`, `111111111111/us-east-1/vol-0def1234/`), "key"},
		{"create key other account", replace(t, createMsg, `"key":"111111111111/`, `"key":"222222222222/`), "key"},
		{"create key other policy", replace(t, createMsg, `/daily/2026`, `/weekly/2026`), "key"},
		{"create key no period", replace(t, createMsg, `/daily/2026-11-22T00:00:00Z"`, `/daily/"`), "key"},
		{"create key bad period", replace(t, createMsg, `/daily/2026-11-22T00:00:00Z"`, `/daily/today"`), "key"},
		{"create key empty event id", replace(t, createMsg, `/daily/2026-11-22T00:00:00Z"`, `/daily/event-"`), "key"},
		{"create key event id with slash", replace(t, createMsg, `/daily/2026-11-22T00:00:00Z"`, `/daily/event-a/b"`), "key"},
		{"create key event id too long", replace(t, createMsg, `/daily/2026-11-22T00:00:00Z"`, `/daily/event-`+strings.Repeat("a", 65)+`"`), "key"},
		{"create key missing", replace(t, createMsg, `"key":"111111111111/us-east-1/vol-0abc1234/daily/2026-11-22T00:00:00Z",`, ``), "key"},
		{"instance missing", replace(t, instanceMsg, `"instance":"i-0abc1234",`, ``), "instance"},
		{"instance bad", replace(t, instanceMsg, `"instance":"i-0abc1234"`, `"instance":"vol-0abc1234"`), "instance"},
		{"instance with volume", replace(t, instanceMsg, `"run":`, `"volume":"vol-0abc1234","run":`), "not allowed"},
		{"instance with device", replace(t, instanceMsg, `"run":`, `"device":"/dev/xvda","run":`), "not allowed"},
		{"instance with name", replace(t, instanceMsg, `"run":`, `"name":"web-1","run":`), "not allowed"},
		{"instance with snapshot", replace(t, instanceMsg, `"run":`, `"snapshot":"snap-0abc1234","run":`), "not allowed"},
		{"instance with duplicate", replace(t, instanceMsg, `"run":`, `"duplicate":true,"run":`), "not allowed"},
		{"create with duplicate", replace(t, createMsg, `"run":`, `"duplicate":true,"run":`), "not allowed"},
		{"delete duplicate not a bool", replace(t, deleteMsg, `"run":`, `"duplicate":"yes","run":`), "cannot unmarshal"},
		{"instance key other instance", replace(t, instanceMsg, `/i-0abc1234/daily`, `/i-0def1234/daily`), "key"},
		{"instance key names a volume", replace(t, instanceMsg, `/i-0abc1234/daily`, `/vol-0abc1234/daily`), "key"},
		{"instance key bad period", replace(t, instanceMsg, `/daily/2026-11-22T00:00:00Z"`, `/daily/soon"`), "key"},
		{"delete snapshot missing", replace(t, deleteMsg, `"snapshot":"snap-0abc1234",`, ``), "snapshot"},
		{"delete snapshot bad", []byte(strings.ReplaceAll(deleteMsg, "snap-0abc1234", "snap-zzzz1234")), "snapshot"},
		{"delete snapshot is a volume", []byte(strings.ReplaceAll(deleteMsg, "snap-0abc1234", "vol-0abc1234")), "snapshot"},
		{"delete volume bad", replace(t, deleteMsg, `"volume":"vol-0abc1234"`, `"volume":"vol-"`), "volume"},
		{"delete with instance", replace(t, deleteMsg, `"run":`, `"instance":"i-0abc1234","run":`), "not allowed"},
		{"delete with name", replace(t, deleteMsg, `"run":`, `"name":"web-1","run":`), "not allowed"},
		{"delete with device", replace(t, deleteMsg, `"run":`, `"device":"/dev/xvda","run":`), "not allowed"},
		{"delete key other snapshot", replace(t, deleteMsg, `/snap-0abc1234/delete`, `/snap-0def1234/delete`), "key"},
		{"delete key other region", replace(t, deleteMsg, `/us-east-1/snap`, `/eu-west-1/snap`), "key"},
		{"delete key missing", replace(t, deleteMsg, `"key":"111111111111/us-east-1/snap-0abc1234/delete",`, ``), "key"},
		{"unknown field", replace(t, createMsg, `"run":`, `"role_arn":"arn:aws:iam::111111111111:role/x","run":`), "unknown field"},
		{"unknown field V2", replace(t, createMsg, `"v":1,`, `"v":1,"V2":1,`), "unknown field"},
		{"field name in other case", replace(t, createMsg, `"kind":`, `"KIND":`), "unknown field"},
		{"field name in title case", replace(t, deleteMsg, `"snapshot":`, `"Snapshot":`), "unknown field"},
		{"duplicate field", replace(t, createMsg, `"v":1,`, `"v":1,"v":1,`), "duplicate"},
		{"duplicate field, last valid", replace(t, deleteMsg, `"account":"111111111111"`, `"account":"222222222222","account":"111111111111"`), "duplicate"},
		{"run with a non-UTF-8 byte", replace(t, createMsg, `"run":"r1"`, "\"run\":\"r\xff1\""), "UTF-8"},
		{"name with a non-UTF-8 byte", replace(t, createMsg, `"device":"/dev/xvda",`, "\"device\":\"/dev/xvda\",\"name\":\"web\xc3\x281\","), "UTF-8"},
		{"non-UTF-8 byte outside strings", []byte(createMsg[:len(createMsg)-1] + "\xff}"), "UTF-8"},
		{"run with NUL", replace(t, createMsg, `"run":"r1"`, `"run":"r\u00001"`), "run"},
		{"run with a control character", replace(t, deleteMsg, `"run":"r1"`, `"run":"r\u001b[31m"`), "run"},
		{"name with NUL", replace(t, createMsg, `"device":"/dev/xvda",`, `"device":"/dev/xvda","name":"web\u0000",`), "name"},
		{"trailing object", []byte(createMsg + createMsg), "trailing"},
		{"trailing garbage", []byte(createMsg + " x"), "trailing"},
		{"truncated", []byte(createMsg[:len(createMsg)-1]), "EOF"},
		{"oversized", []byte(createMsg[:len(createMsg)-1] + strings.Repeat(" ", MaxSize) + "}"), "over"},
		{"oversized run", replace(t, createMsg, `"run":"r1"`, `"run":"`+strings.Repeat("x", MaxSize)+`"`), "over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Decode(tt.msg)
			if err == nil {
				t.Fatalf("Decode(%s) = %+v, want an error", tt.msg, got)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not mention %q", err, tt.field)
			}
			if !equal(got, Job{}) {
				t.Errorf("Decode returned a partial job %+v with its error", got)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		job  Job
	}{
		{"create", validCreate()},
		{"delete", validDelete()},
		{"create with name", func() Job { j := validCreate(); j.Name = "web-1 <prod> & \u2028"; return j }()},
		{"planned_at with nanoseconds and zone", func() Job {
			j := validDelete()
			j.PlannedAt = time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("X", 5*3600+1800))
			return j
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := Encode(tt.job)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if len(b) > MaxSize {
				t.Fatalf("encoded %d bytes, over %d", len(b), MaxSize)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(Encode(j)): %v\n%s", err, b)
			}
			if !equal(got, tt.job) {
				t.Fatalf("round trip =\n%+v\nwant\n%+v", got, tt.job)
			}
		})
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		job  Job
	}{
		{"zero", Job{}},
		{"bad key", func() Job { j := validDelete(); j.Key = "x"; return j }()},
		{"unknown kind", func() Job { j := validCreate(); j.Kind = "snapshot.restore"; return j }()},
		// Region names are the one unbounded field: a valid-looking but huge one must
		// still not produce a message over MaxSize.
		{"oversized", func() Job {
			j := validDelete()
			j.Region = "us-" + strings.Repeat("x", MaxSize) + "-1"
			j.Key = DeleteKey(j.Account, j.Region, j.Snapshot)
			return j
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := Encode(tt.job)
			if err == nil {
				t.Fatalf("Encode(%+v) = %s, want an error", tt.job, b)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, got, want string
	}{
		{"create key in UTC",
			CreateKey("111111111111", "us-east-1", "vol-0abc1234", "daily", time.Date(2026, 11, 22, 1, 0, 0, 0, time.FixedZone("CET", 3600))),
			"111111111111/us-east-1/vol-0abc1234/daily/2026-11-22T00:00:00Z"},
		{"delete key",
			DeleteKey("111111111111", "us-east-1", "snap-0abc1234"),
			"111111111111/us-east-1/snap-0abc1234/delete"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestValidators(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fn   func(string) bool
		name string
		in   string
		want bool
	}{
		{ValidAccount, "account", "123456789012", true},
		{ValidAccount, "account", "12345678901", false},
		{ValidAccount, "account", "1234567890123", false},
		{ValidAccount, "account", "", false},
		{ValidRegion, "region", "us-east-1", true},
		{ValidRegion, "region", "us-gov-west-1", true},
		{ValidRegion, "region", "eu-central-2", true},
		{ValidRegion, "region", "us-east", false},
		{ValidRegion, "region", "", false},
		{ValidPolicyName, "policy", "daily-2", true},
		{ValidPolicyName, "policy", strings.Repeat("a", 64), true},
		{ValidPolicyName, "policy", strings.Repeat("a", 65), false},
		{ValidPolicyName, "policy", "", false},
		{ValidPolicyName, "policy", "a_b", false},
	}
	for _, tt := range tests {
		if got := tt.fn(tt.in); got != tt.want {
			t.Errorf("Valid %s(%q) = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

// equal compares jobs with time.Time.Equal for PlannedAt: the wire form keeps the instant,
// not the *time.Location pointer.
func equal(a, b Job) bool {
	if !a.PlannedAt.Equal(b.PlannedAt) {
		return false
	}
	if !maps.Equal(a.InstanceTags, b.InstanceTags) {
		return false
	}
	a.PlannedAt, b.PlannedAt = time.Time{}, time.Time{}
	a.InstanceTags, b.InstanceTags = nil, nil
	return reflect.DeepEqual(a, b)
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		createMsg, deleteMsg, instanceMsg, copyMsg, archiveMsg,
		strings.Replace(createMsg, `"instance":"i-0abc1234","device":"/dev/xvda",`, "", 1),
		strings.ReplaceAll(deleteMsg, "snap-0abc1234", "snap-0123456789abcdef0"),
		`{"v":2}`, `{}`, `null`, `[]`, ``, `{"v":1,"kind":"snapshot.delete"}`,
		createMsg + createMsg, createMsg + "x",
		strings.Replace(createMsg, `"v":1`, `"v":1.0`, 1),
		strings.Replace(createMsg, `"v":1`, `"v":1e0`, 1),
		strings.Replace(deleteMsg, `"planned_at":"2026-11-22T01:00:03Z"`, `"planned_at":"2026-11-22T01:00:03.123456789+05:30"`, 1),
		strings.Replace(createMsg, `"daily"`, `"dai\u006cy"`, 1),
		strings.Replace(createMsg, `"device":"/dev/xvda",`, `"device":"/dev/xvda","name":"web-1",`, 1),
		strings.Replace(createMsg, `"device":"/dev/xvda",`, `"device":"/dev/xvda","name":"\u00e9\u2028<&>",`, 1),
		strings.Replace(instanceMsg, `"run":`, `"name":"web-1","run":`, 1),
		strings.Replace(createMsg, `"run":"r1"`, "\"run\":\"r\xff1\"", 1),
		strings.Replace(createMsg, `"run":"r1"`, `"run":"r\u00001"`, 1),
		strings.Replace(deleteMsg, `"run":"r1"`, `"run":"r\ud8001"`, 1),
		strings.Replace(createMsg, `"device":"/dev/xvda",`, "\"device\":\"/dev/xvda\",\"name\":\"\xed\xa0\x80\",", 1),
		strings.Replace(createMsg, `"run":`, `"instance_tags":{"Role":"solr","Cluster":"b"},"run":`, 1),
		strings.Replace(instanceMsg, `"run":`, `"instance_tags":{"Role":"solr"},"run":`, 1),
		strings.Replace(createMsg, `"run":`, `"instance_tags":{"snapfleet:policy":"x"},"run":`, 1),
		strings.Replace(createMsg, `"run":`, `"instance_tags":{"Role":"a","Role":"b"},"run":`, 1),
		strings.Replace(createMsg, `"run":`, `"instance_tags":{},"run":`, 1),
		strings.Replace(createMsg, `"run":`, `"instance_tags":null,"run":`, 1),
		strings.Replace(deleteMsg, `"run":`, `"instance_tags":{"Role":"solr"},"run":`, 1),
		drillMsg,
		strings.Replace(drillMsg, `"drill":"d1"`, `"drill":"d 1"`, 1),
		strings.Replace(drillMsg, `/drill/d1"`, `/drill/d2"`, 1),
		strings.Replace(drillMsg, `"run":`, `"volume":"vol-0abc1234","run":`, 1),
		strings.Replace(createMsg, `"run":`, `"drill":"d1","run":`, 1),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if err := j.Validate(); err != nil {
			t.Fatalf("decoded job does not validate: %v", err)
		}
		enc, err := Encode(j)
		if err != nil {
			t.Fatalf("Encode of decoded job %+v: %v", j, err)
		}
		j2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(b))): %v\n%s", err, enc)
		}
		if !equal(j, j2) {
			t.Fatalf("round trip changed the job:\n%+v\n%+v", j, j2)
		}
		enc2, err := Encode(j2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %s vs %s (%v)", enc, enc2, err)
		}
	})
}

func ExampleDecode() {
	msg := []byte(`{"v":1,"kind":"snapshot.delete","key":"111111111111/us-east-1/snap-0abc1234/delete",` +
		`"account":"111111111111","region":"us-east-1","policy":"daily","snapshot":"snap-0abc1234",` +
		`"run":"r1","planned_at":"2026-11-22T01:00:03Z"}`)
	j, err := Decode(msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(j.Kind, j.Account, j.Region, j.Snapshot)

	_, err = Decode([]byte(`{"v":2}`))
	fmt.Println(errors.Is(err, ErrInvalid))
	// Output:
	// snapshot.delete 111111111111 us-east-1 snap-0abc1234
	// true
}

func ExampleEncode() {
	period := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	b, err := Encode(Job{
		V: Version, Kind: KindCreate,
		Key:     CreateKey("111111111111", "us-east-1", "vol-0abc1234", "daily", period),
		Account: "111111111111", Region: "us-east-1", Policy: "daily",
		Volume: "vol-0abc1234", Instance: "i-0abc1234", Device: "/dev/xvda", Name: "web-1",
		Run: "r1", PlannedAt: period.Add(time.Hour),
	})
	fmt.Println(string(b))
	fmt.Println(err)
	// Output:
	// {"v":1,"kind":"snapshot.create","key":"111111111111/us-east-1/vol-0abc1234/daily/2026-11-22T00:00:00Z","account":"111111111111","region":"us-east-1","policy":"daily","volume":"vol-0abc1234","instance":"i-0abc1234","device":"/dev/xvda","name":"web-1","run":"r1","planned_at":"2026-11-22T01:00:00Z"}
	// <nil>
}

func TestGroupID(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		j    Job
		want string
	}{
		{Job{Account: "111111111111", Region: "us-east-1", Volume: "vol-0abc12345"}, "111111111111/us-east-1/vol-0abc12345"},
		{Job{Account: "111111111111", Region: "us-east-1", Volume: "vol-0abc12345", Snapshot: "snap-0abc12345"}, "111111111111/us-east-1/vol-0abc12345"},
		{Job{Account: "111111111111", Region: "eu-west-1", Snapshot: "snap-0abc12345"}, "111111111111/eu-west-1/snap-0abc12345"},
		{Job{Kind: KindCreateInstance, Account: "111111111111", Region: "eu-west-1", Instance: "i-0abc12345"}, "111111111111/eu-west-1/i-0abc12345"},
	} {
		if got := GroupID(c.j); got != c.want {
			t.Errorf("GroupID(%+v) = %q, want %q", c.j, got, c.want)
		}
	}
}
