package planner_test

import (
	"fmt"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/planner"
)

func ExampleDecide() {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	inv := planner.Inventory{
		Account: "111111111111",
		Region:  "eu-west-1",
		Instances: []planner.Instance{{
			ID: "i-0123456789abcdef0", State: "running",
			Volumes: []planner.Attachment{{Volume: "vol-0123456789abcdef0", Device: "/dev/xvda"}},
		}},
		Snapshots: []planner.Snapshot{
			{ID: "snap-00000000000000001", Owner: "111111111111", Policy: "default", Volume: "vol-0123456789abcdef0",
				Start: now.AddDate(0, 0, -31), State: "completed"},
			{ID: "snap-00000000000000002", Owner: "111111111111", Policy: "default", Volume: "vol-0123456789abcdef0",
				Start: now.AddDate(0, 0, -1), State: "completed"},
		},
		SnapshotsComplete: true,
	}
	// The default policy: daily, kept 30 days, never fewer than one.
	res := planner.Decide(inv, config.Default(), now)
	for _, d := range res.Decisions {
		target := d.Volume
		if d.Snapshot != "" {
			target = d.Snapshot
		}
		fmt.Println(d.Action, target, d.Reason)
		if d.Key != "" {
			fmt.Println("  job", d.Key)
		}
	}
	// Output:
	// create vol-0123456789abcdef0 due
	//   job 111111111111/eu-west-1/vol-0123456789abcdef0/default/2026-11-22T00:00:00Z
	// keep snap-00000000000000002 newest
	// delete snap-00000000000000001 expired
	//   job 111111111111/eu-west-1/snap-00000000000000001/delete
}
