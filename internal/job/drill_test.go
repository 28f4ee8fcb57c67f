package job

import (
	"errors"
	"strings"
	"testing"
)

const drillMsg = `{"v":1,"kind":"volume.drill","key":"111111111111/us-east-1/snap-0abc1234/drill/d1",` +
	`"account":"111111111111","region":"us-east-1","policy":"daily","snapshot":"snap-0abc1234","drill":"d1",` +
	`"run":"d1","planned_at":"2026-11-22T01:00:03Z"}`

// TestDrillJob: a volume.drill job decodes; a bad drill id, a key that is not its own,
// a field of another kind, or a drill id on another kind is invalid.
func TestDrillJob(t *testing.T) {
	t.Parallel()
	j, err := Decode([]byte(drillMsg))
	if err != nil || j.Kind != KindDrill || j.Drill != "d1" || j.Snapshot != "snap-0abc1234" || GroupID(j) != "111111111111/us-east-1/snap-0abc1234" {
		t.Fatalf("Decode: %+v, %v", j, err)
	}
	for name, msg := range map[string]string{
		"bad drill id":   strings.Replace(drillMsg, `"drill":"d1"`, `"drill":"d 1"`, 1),
		"no drill id":    strings.Replace(drillMsg, `"drill":"d1",`, ``, 1),
		"other key":      strings.Replace(drillMsg, `/drill/d1"`, `/drill/d2"`, 1),
		"volume":         strings.Replace(drillMsg, `"run":`, `"volume":"vol-0abc1234","run":`, 1),
		"no snapshot":    strings.Replace(drillMsg, `"snapshot":"snap-0abc1234",`, ``, 1),
		"drill on other": strings.Replace(createMsg, `"run":`, `"drill":"d1","run":`, 1),
	} {
		if _, err := Decode([]byte(msg)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}
