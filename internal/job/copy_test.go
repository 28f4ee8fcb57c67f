package job

import (
	"errors"
	"strings"
	"testing"
)

const (
	copyMsg = `{"v":1,"kind":"snapshot.copy","key":"222222222222/us-west-2/snap-0abc1234/copy",` +
		`"account":"222222222222","region":"us-west-2","policy":"daily","volume":"vol-0abc1234",` +
		`"source_account":"111111111111","source_region":"us-east-1","source_snapshot":"snap-0abc1234","run":"r1","planned_at":"2026-11-22T01:00:03Z"}`
	archiveMsg = `{"v":1,"kind":"snapshot.archive","key":"111111111111/us-east-1/snap-0abc1234/archive",` +
		`"account":"111111111111","region":"us-east-1","policy":"daily","snapshot":"snap-0abc1234","volume":"vol-0abc1234",` +
		`"run":"r1","planned_at":"2026-11-22T01:00:03Z"}`
)

func TestDecodeCopyArchive(t *testing.T) {
	t.Parallel()
	j, err := Decode([]byte(copyMsg))
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if j.SourceSnapshot != "snap-0abc1234" || j.SourceRegion != "us-east-1" || j.SourceAccount != "111111111111" || GroupID(j) != "222222222222/us-west-2/snap-0abc1234" {
		t.Errorf("copy = %+v", j)
	}
	if _, err := Decode([]byte(archiveMsg)); err != nil {
		t.Fatalf("archive: %v", err)
	}
	bad := []struct{ name, msg, want string }{
		{"copy key of another destination", strings.Replace(copyMsg, `"key":"222222222222/us-west-2`, `"key":"222222222222/eu-west-1`, 1), "key"},
		{"copy without source", strings.Replace(copyMsg, `"source_snapshot":"snap-0abc1234",`, "", 1), "source_snapshot"},
		{"copy bad source region", strings.Replace(copyMsg, `"source_region":"us-east-1"`, `"source_region":"moon"`, 1), "source_region"},
		{"copy bad source account", strings.Replace(copyMsg, `"source_account":"111111111111"`, `"source_account":"1"`, 1), "source_account"},
		{"copy onto itself", strings.NewReplacer(`"source_account":"111111111111"`, `"source_account":"222222222222"`, `"source_region":"us-east-1"`, `"source_region":"us-west-2"`).Replace(copyMsg), "its source's own"},
		{"copy naming a snapshot", strings.Replace(copyMsg, `"run":`, `"snapshot":"snap-0abc1234","run":`, 1), "snapshot"},
		{"copy with an instance", strings.Replace(copyMsg, `"run":`, `"instance":"i-0abc1234","run":`, 1), "instance"},
		{"archive key of another snapshot", strings.Replace(archiveMsg, `snap-0abc1234/archive`, `snap-0abc9999/archive`, 1), "key"},
		{"archive with a source", strings.Replace(archiveMsg, `"run":`, `"source_snapshot":"snap-0abc1234","run":`, 1), "source_snapshot"},
		{"delete with a source", strings.Replace(deleteMsg, `"run":`, `"source_region":"us-east-1","run":`, 1), "source"},
		{"archive without snapshot", strings.Replace(archiveMsg, `"snapshot":"snap-0abc1234",`, "", 1), "snapshot"},
	}
	for _, tt := range bad {
		_, err := Decode([]byte(tt.msg))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want ErrInvalid naming %s", tt.name, err, tt.want)
		}
	}
}
