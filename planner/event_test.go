package planner

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// TestPlanEventThroughMoto: the opt-in tag and the events policy of the config, the
// policy's exclude tags, a volume that already has the event's snapshot, an instance
// that is gone, a state that is not a stop, a BackupNow selector by tag and by id, and an
// account outside the config.
func TestPlanEventThroughMoto(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	cfg := mustConfig(t, `
policies:
  - name: daily
    retain: {max_age: 30d}
  - name: on-stop
    select:
      exclude_tags: {"snapfleet:skip": "true"}
    retain: {max_age: 7d}
events:
  opt_in_tag: {Snap: "on-stop"}
  policy: on-stop
`)
	c := f.client(mototest.Region)
	az := mototest.Region + "a"
	optedIn, vols := f.instance(c, az, map[string]string{"Snap": "on-stop", "App": "shop", "Name": "shop-1"})
	f.tagResource(c, vols[1], map[string]string{"snapfleet:skip": "true"})
	defaultTag, _ := f.instance(c, az, map[string]string{"AutoSnapshot": "true"})
	_, shopVols := f.instance(c, az, map[string]string{"App": "shop"})
	now := time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)
	stop := func(id, instance, state string) event.Event {
		return event.Event{ID: id, Kind: event.KindStateChange, DetailType: event.DetailStateChange,
			Account: mototest.Account, Region: mototest.Region, Instance: instance, State: state}
	}

	q := &recorder{}
	sum, err := f.planner(cfg, []string{mototest.Region}, nil, q, now).PlanEvent(f.ctx, stop("e1", optedIn, "stopped"))
	if err != nil {
		t.Fatal(err)
	}
	creates, deletes := q.jobs(t)
	if len(creates) != 1 || len(deletes) != 0 || sum.Enqueued != 1 || sum.Instances != 1 || sum.Volumes != 2 {
		t.Fatalf("summary %+v, jobs %v: want one create, the excluded data volume skipped", sum, creates)
	}
	if j := creates[0]; j.Volume != vols[0] || j.Policy != "on-stop" || j.Instance != optedIn || j.Name != "shop-1" ||
		j.Key != job.EventKey(mototest.Account, mototest.Region, vols[0], "on-stop", "e1") {
		t.Errorf("job %+v", j)
	}

	// The event's snapshot exists: a second delivery plans nothing (dry run shows why).
	f.snapshot(vols[0], time.Minute, map[string]string{tag.Policy: "on-stop", tag.Job: creates[0].Key, tag.Volume: vols[0]})
	dry := f.planner(cfg, []string{mototest.Region}, nil, nil, now)
	dry.DryRun = true
	sum, err = dry.PlanEvent(f.ctx, stop("e1", optedIn, "stopping"))
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, d := range sum.Decisions {
		reasons[d.Volume] = d.Reason
	}
	if sum.SnapshotJobs != 0 || reasons[vols[0]] != reason.Done || reasons[vols[1]] != reason.Excluded {
		t.Errorf("second delivery: %d jobs, reasons %v; want none, done and excluded", sum.SnapshotJobs, reasons)
	}

	for name, ev := range map[string]event.Event{
		"default tag is not this config's": stop("e2", defaultTag, "stopped"),
		"running is not a stop":            stop("e3", optedIn, "running"),
		"gone instance":                    stop("e4", "i-0123456789abcdef0", "stopped"),
	} {
		q := &recorder{}
		sum, err := f.planner(cfg, []string{mototest.Region}, nil, q, now).PlanEvent(f.ctx, ev)
		if err != nil || sum.Enqueued != 0 || sum.Errors != 0 || len(q.msgs) != 0 {
			t.Errorf("%s: %+v, %v; want nothing planned, no error", name, sum, err)
		}
	}

	q = &recorder{}
	sel := event.Event{ID: "rel-1", Kind: event.KindBackupNow, DetailType: event.DetailBackupNow,
		Selector: &event.Selector{Tags: map[string]string{"App": "shop"}}}
	if sum, err = f.planner(cfg, []string{mototest.Region}, nil, q, now).PlanEvent(f.ctx, sel); err != nil {
		t.Fatal(err)
	}
	creates, _ = q.jobs(t)
	var got []string
	for _, j := range creates {
		got = append(got, j.Volume)
		if want := map[bool]string{true: "shop-1"}[j.Instance == optedIn]; j.Name != want {
			t.Errorf("BackupNow job of %s (instance %s): name %q, want %q", j.Volume, j.Instance, j.Name, want)
		}
	}
	slices.Sort(got)
	want := []string{vols[0], shopVols[0], shopVols[1]}
	slices.Sort(want)
	if !slices.Equal(got, want) || sum.Instances != 2 {
		t.Errorf("BackupNow by tag: volumes %v, want %v (the excluded one skipped)", got, want)
	}

	sel.Selector = &event.Selector{Accounts: []string{"222222222222"}, Instances: []string{optedIn}}
	if _, err := f.planner(cfg, []string{mototest.Region}, nil, &recorder{}, now).PlanEvent(f.ctx, sel); !errors.Is(err, ErrEventScope) {
		t.Errorf("account outside the config: %v, want ErrEventScope", err)
	}
}

func TestEventSummaryText(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	Summary{RunID: "r1", Event: &event.Event{ID: "rel-1", DetailType: event.DetailBackupNow}}.WriteText(&b)
	if !strings.Contains(b.String(), "snapfleet.BackupNow rel-1") {
		t.Errorf("text summary does not name the event:\n%s", b.String())
	}
}
