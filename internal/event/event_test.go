package event

import (
	"errors"
	"strings"
	"testing"
)

const stateChange = `{"version":"0","id":"7bf73129-1428-4cd3-a780-95db273d1602","detail-type":"EC2 Instance State-change Notification",
"source":"aws.ec2","account":"123456789012","time":"2026-11-22T05:00:00Z","region":"us-east-1",
"resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-0abcd1234"],"detail":{"instance-id":"i-0abcd1234","state":"stopping"}}`

const backupNow = `{"version":"0","id":"release-42","detail-type":"snapfleet.BackupNow","source":"release.pipeline",
"account":"123456789012","time":"2026-11-22T05:00:00Z","region":"us-east-1","resources":[],
"detail":{"accounts":["123456789012"],"regions":["us-east-1"],"tags":{"App":"shop"}}}`

func TestParse(t *testing.T) {
	t.Parallel()
	ev, err := Parse([]byte(stateChange))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != KindStateChange || ev.ID != "7bf73129-1428-4cd3-a780-95db273d1602" || ev.Account != "123456789012" ||
		ev.Region != "us-east-1" || ev.Instance != "i-0abcd1234" || ev.State != "stopping" || ev.Time.IsZero() {
		t.Errorf("state change parsed as %+v", ev)
	}
	ev, err = Parse([]byte(backupNow))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != KindBackupNow || ev.ID != "release-42" || ev.Selector == nil || ev.Selector.Tags["App"] != "shop" ||
		len(ev.Selector.Accounts) != 1 || len(ev.Selector.Regions) != 1 {
		t.Errorf("BackupNow parsed as %+v", ev)
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, doc, want string }{
		{"empty", ``, "not an EventBridge event"},
		{"not JSON", `snapshot please`, "not an EventBridge event"},
		{"array", `[]`, "not an EventBridge event"},
		{"no id", strings.Replace(stateChange, `"id":"7bf73129-1428-4cd3-a780-95db273d1602",`, ``, 1), "id"},
		{"id with slash", strings.Replace(stateChange, `7bf73129-1428`, `7bf7/3129`, 1), "id"},
		{"bad time", strings.Replace(stateChange, `2026-11-22T05:00:00Z`, `yesterday`, 1), "time"},
		{"unknown detail-type", strings.Replace(stateChange, `EC2 Instance State-change Notification`, `EBS Snapshot Notification`, 1), "detail-type"},
		{"no detail", strings.Replace(stateChange, `"detail":{"instance-id":"i-0abcd1234","state":"stopping"}`, `"detail":null`, 1), "detail"},
		{"bad instance", strings.Replace(stateChange, `"instance-id":"i-0abcd1234"`, `"instance-id":"i-xyz"`, 1), "instance-id"},
		{"no state", strings.Replace(stateChange, `,"state":"stopping"`, ``, 1), "state"},
		{"bad account", strings.Replace(stateChange, `"account":"123456789012"`, `"account":"1234"`, 1), "account"},
		{"bad region", strings.Replace(stateChange, `"region":"us-east-1"`, `"region":"moon"`, 1), "region"},
		{"selector unknown key", strings.Replace(backupNow, `"tags":`, `"tag":`, 1), "unknown field"},
		{"selector empty", strings.Replace(backupNow, `,"tags":{"App":"shop"}`, ``, 1), "select by tags or instances"},
		{"selector bad account", strings.Replace(backupNow, `"accounts":["123456789012"]`, `"accounts":["x"]`, 1), "detail.accounts"},
		{"selector bad region", strings.Replace(backupNow, `"regions":["us-east-1"]`, `"regions":["x"]`, 1), "detail.regions"},
		{"selector bad instance", strings.Replace(backupNow, `"tags":{"App":"shop"}`, `"instances":["vol-1"]`, 1), "detail.instances"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line naming %q", tc.name, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(stateChange))
	f.Add([]byte(backupNow))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Parse(b)
		if err == nil && ev.Kind != KindStateChange && ev.Kind != KindBackupNow {
			t.Fatalf("parsed with kind %q", ev.Kind)
		}
	})
}
