package planner

import (
	"testing"

	"github.com/snapfleet/snapfleet/internal/job"
)

// TestDecideApplication: a policy with consistency: application plans one snapshots.create
// per instance, as consistency: instance does (the worker runs the hooks around it).
func TestDecideApplication(t *testing.T) {
	t.Parallel()
	cfg := mustConfig(t, `
policies:
  - name: app
    consistency: application
    hooks: {on_pre_failure: skip}
    retain: {max_age: 30d}
`)
	inv := Inventory{Account: acct, Region: region, SnapshotsComplete: true,
		Instances: []Instance{running("i-00000001", nil, "vol-00000010", "vol-00000011")}}
	res := Decide(inv, cfg, now)
	if res.Creates != 1 {
		t.Fatalf("creates = %d, want 1 for the instance", res.Creates)
	}
	for _, d := range res.Decisions {
		if d.Action != ActionCreate {
			continue
		}
		msg, err := d.message("r1", now)
		if err != nil {
			t.Fatal(err)
		}
		if j, err := job.Decode(msg.Body); err != nil || j.Kind != job.KindCreateInstance || j.Instance != "i-00000001" || j.Volume != "" {
			t.Errorf("message %s: %+v, %v", msg.Body, j, err)
		}
	}
}
