package planner

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/reason"
	"github.com/snapfleet/snapfleet/internal/retention"
)

const (
	acct   = "111111111111"
	other  = "999999999999"
	region = "eu-west-1"
)

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func mustConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	if yaml == "" {
		return config.Default()
	}
	c, err := config.Parse(strings.NewReader(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

func running(id string, tags map[string]string, vols ...string) Instance {
	return instance(id, "running", tags, vols...)
}

func instance(id, state string, tags map[string]string, vols ...string) Instance {
	in := Instance{ID: id, State: state, Tags: tags}
	for i, v := range vols {
		in.Volumes = append(in.Volumes, Attachment{Volume: v, Device: fmt.Sprintf("/dev/xvd%c", 'a'+i)})
	}
	return in
}

// snap is a completed snapshot of acct, taken age before now, managed by policy.
func snap(id, policy, volume string, age time.Duration) Snapshot {
	return Snapshot{ID: id, Owner: acct, Policy: policy, Volume: volume, Start: now.Add(-age), State: "completed"}
}

const day = 24 * time.Hour

// brief renders a decision as "policy action target reason" (target: the snapshot for
// keep/delete, the volume for create/skip).
func brief(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		target := d.Volume
		if d.Snapshot != "" {
			target = d.Snapshot
		}
		out = append(out, strings.Join([]string{d.Policy, d.Action, target, d.Reason}, " "))
	}
	sort.Strings(out)
	return out
}

func TestDecide(t *testing.T) {
	t.Parallel()
	twoPolicies := `
policies:
  - name: daily
    retain: {max_age: 30d}
  - name: weekly
    every: 7d
    select: {instance_states: [running, stopped]}
    retain: {keep_last: 4}
`
	exclude := `
policies:
  - name: daily
    select:
      exclude_tags: {"snapfleet:skip": "true", Backup: "no"}
    retain: {max_age: 30d}
`
	tests := []struct {
		name   string
		config string
		inv    Inventory
		want   []string
	}{
		{
			name: "one create per volume of a running instance",
			inv:  Inventory{Instances: []Instance{running("i-000000000000000a1", nil, "vol-000000000000000a1", "vol-000000000000000a2")}, SnapshotsComplete: true},
			want: []string{"default create vol-000000000000000a1 due", "default create vol-000000000000000a2 due"},
		},
		{
			name: "stopped instances are not selected by default",
			inv: Inventory{Instances: []Instance{
				instance("i-000000000000000a1", "stopped", nil, "vol-000000000000000a1"),
				instance("i-000000000000000a2", "stopping", nil, "vol-000000000000000a2"),
			}, SnapshotsComplete: true},
		},
		{
			name:   "stopped instances are selected when the policy says so; a volume of two policies gets a job for each",
			config: twoPolicies,
			inv: Inventory{Instances: []Instance{
				running("i-000000000000000a1", nil, "vol-000000000000000a1"),
				instance("i-000000000000000a2", "stopped", nil, "vol-000000000000000a2"),
			}, SnapshotsComplete: true},
			want: []string{
				"daily create vol-000000000000000a1 due",
				"weekly create vol-000000000000000a1 due",
				"weekly create vol-000000000000000a2 due",
			},
		},
		{
			name: "instance tags must all match",
			config: `
policies:
  - name: daily
    select: {instance_tags: {AutoBackup: "true", Env: prod}}
    retain: {max_age: 30d}
`,
			inv: Inventory{Instances: []Instance{
				running("i-000000000000000a1", map[string]string{"AutoBackup": "true", "Env": "prod"}, "vol-000000000000000a1"),
				running("i-000000000000000a2", map[string]string{"AutoBackup": "true", "Env": "dev"}, "vol-000000000000000a2"),
				running("i-000000000000000a3", map[string]string{"Env": "prod"}, "vol-000000000000000a3"),
				running("i-000000000000000a4", map[string]string{"AutoBackup": "false", "Env": "prod"}, "vol-000000000000000a4"),
			}, SnapshotsComplete: true},
			want: []string{"daily create vol-000000000000000a1 due"},
		},
		{
			name:   "exclusion on the instance skips all its volumes",
			config: exclude,
			inv: Inventory{Instances: []Instance{
				running("i-000000000000000a1", map[string]string{"snapfleet:skip": "true"}, "vol-000000000000000a1", "vol-000000000000000a2"),
				running("i-000000000000000a2", map[string]string{"snapfleet:skip": "false"}, "vol-000000000000000a3"),
			}, SnapshotsComplete: true},
			want: []string{
				"daily create vol-000000000000000a3 due",
				"daily skip vol-000000000000000a1 excluded",
				"daily skip vol-000000000000000a2 excluded",
			},
		},
		{
			name:   "exclusion on the volume skips that volume only",
			config: exclude,
			inv: Inventory{
				Instances: []Instance{running("i-000000000000000a1", nil, "vol-000000000000000a1", "vol-000000000000000a2", "vol-000000000000000a3")},
				VolumeTags: map[string]map[string]string{
					"vol-000000000000000a1": {"Backup": "no"},
					"vol-000000000000000a3": {"Backup": "yes"},
				},
				SnapshotsComplete: true,
			},
			want: []string{
				"daily create vol-000000000000000a2 due",
				"daily create vol-000000000000000a3 due",
				"daily skip vol-000000000000000a1 excluded",
			},
		},
		{
			name: "a snapshot of this period means done; one of the period before does not",
			inv: Inventory{
				Instances: []Instance{running("i-000000000000000a1", nil, "vol-000000000000000a1", "vol-000000000000000a2")},
				Snapshots: []Snapshot{
					// now is 10:00; the period started at midnight.
					snap("snap-000000000000000a1", "default", "vol-000000000000000a1", 10*time.Hour),
					snap("snap-000000000000000a2", "default", "vol-000000000000000a2", 10*time.Hour+time.Second),
				},
				SnapshotsComplete: true,
			},
			want: []string{
				"default create vol-000000000000000a2 due",
				"default keep snap-000000000000000a1 newest",
				"default keep snap-000000000000000a2 newest",
				"default skip vol-000000000000000a1 done",
			},
		},
		{
			name: "second plan in the period: the job key on a snapshot means done even without a start time",
			inv: Inventory{
				Instances: []Instance{running("i-000000000000000a1", nil, "vol-000000000000000a1")},
				Snapshots: []Snapshot{{ID: "snap-000000000000000a1", Owner: acct, Policy: "default", Volume: "vol-000000000000000a1", State: "pending",
					Job: job.CreateKey(acct, region, "vol-000000000000000a1", "default", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))}},
				SnapshotsComplete: true,
			},
			want: []string{
				"default keep snap-000000000000000a1 unknown_time",
				"default skip vol-000000000000000a1 done",
			},
		},
		{
			name: "a failed snapshot of this period does not count as done",
			inv: Inventory{
				Instances:         []Instance{running("i-000000000000000a1", nil, "vol-000000000000000a1")},
				Snapshots:         []Snapshot{{ID: "snap-000000000000000a1", Owner: acct, Policy: "default", Volume: "vol-000000000000000a1", State: "error", Start: now.Add(-time.Hour)}},
				SnapshotsComplete: true,
			},
			want: []string{
				"default create vol-000000000000000a1 due",
				"default keep snap-000000000000000a1 not_completed",
			},
		},
		{
			name:   "another policy's snapshot does not satisfy this one",
			config: twoPolicies,
			inv: Inventory{
				Instances:         []Instance{running("i-000000000000000a1", nil, "vol-000000000000000a1")},
				Snapshots:         []Snapshot{snap("snap-000000000000000a1", "weekly", "vol-000000000000000a1", time.Hour)},
				SnapshotsComplete: true,
			},
			want: []string{
				"daily create vol-000000000000000a1 due",
				"weekly keep snap-000000000000000a1 newest",
				"weekly skip vol-000000000000000a1 done",
			},
		},
		{
			name: "max_age expires the old ones, never the newest",
			inv: Inventory{Snapshots: []Snapshot{
				snap("snap-000000000000000a1", "default", "vol-000000000000000a1", 1*day),
				snap("snap-000000000000000a2", "default", "vol-000000000000000a1", 29*day),
				snap("snap-000000000000000a3", "default", "vol-000000000000000a1", 31*day),
				snap("snap-000000000000000a4", "default", "vol-000000000000000a1", 40*day),
				snap("snap-000000000000000b1", "default", "vol-000000000000000b1", 100*day),
			}, SnapshotsComplete: true},
			want: []string{
				"default delete snap-000000000000000a3 expired",
				"default delete snap-000000000000000a4 expired",
				"default keep snap-000000000000000a1 newest",
				"default keep snap-000000000000000a2 max_age",
				"default keep snap-000000000000000b1 newest",
			},
		},
		{
			name: "keep_last keeps the newest N",
			config: `
policies:
  - name: p
    retain: {keep_last: 3}
`,
			inv: Inventory{Snapshots: []Snapshot{
				snap("snap-000000000000000a1", "p", "vol-000000000000000a1", 1*day),
				snap("snap-000000000000000a2", "p", "vol-000000000000000a1", 2*day),
				snap("snap-000000000000000a3", "p", "vol-000000000000000a1", 3*day),
				snap("snap-000000000000000a4", "p", "vol-000000000000000a1", 4*day),
				snap("snap-000000000000000a5", "p", "vol-000000000000000a1", 5*day),
			}, SnapshotsComplete: true},
			want: []string{
				"p delete snap-000000000000000a4 expired",
				"p delete snap-000000000000000a5 expired",
				"p keep snap-000000000000000a1 newest",
				"p keep snap-000000000000000a2 keep_last",
				"p keep snap-000000000000000a3 keep_last",
			},
		},
		{
			name: "min_keep is a floor under max_age",
			config: `
policies:
  - name: p
    retain: {max_age: 1d, min_keep: 3}
`,
			inv: Inventory{Snapshots: []Snapshot{
				snap("snap-000000000000000a1", "p", "vol-000000000000000a1", 10*day),
				snap("snap-000000000000000a2", "p", "vol-000000000000000a1", 20*day),
				snap("snap-000000000000000a3", "p", "vol-000000000000000a1", 30*day),
				snap("snap-000000000000000a4", "p", "vol-000000000000000a1", 40*day),
			}, SnapshotsComplete: true},
			want: []string{
				"p delete snap-000000000000000a4 expired",
				"p keep snap-000000000000000a1 newest",
				"p keep snap-000000000000000a2 min_keep",
				"p keep snap-000000000000000a3 min_keep",
			},
		},
		{
			name: "min_keep 0 still keeps the newest",
			config: `
policies:
  - name: p
    retain: {max_age: 1d, min_keep: 0}
`,
			inv: Inventory{Snapshots: []Snapshot{
				snap("snap-000000000000000a1", "p", "vol-000000000000000a1", 10*day),
				snap("snap-000000000000000a2", "p", "vol-000000000000000a1", 20*day),
			}, SnapshotsComplete: true},
			want: []string{
				"p delete snap-000000000000000a2 expired",
				"p keep snap-000000000000000a1 newest",
			},
		},
		{
			name: "foreign owner: never a decision, never counted as newest",
			inv: Inventory{Snapshots: []Snapshot{
				{ID: "snap-000000000000000f1", Owner: other, Policy: "default", Volume: "vol-000000000000000a1", Start: now.Add(-100 * day), State: "completed"},
				{ID: "snap-000000000000000f2", Owner: other, Policy: "default", Volume: "vol-000000000000000a1", Start: now.Add(-time.Hour), State: "completed"},
				{ID: "snap-000000000000000f3", Policy: "default", Volume: "vol-000000000000000a1", Start: now.Add(-100 * day), State: "completed"},
				snap("snap-000000000000000a1", "default", "vol-000000000000000a1", 50*day),
			}, SnapshotsComplete: true},
			want: []string{"default keep snap-000000000000000a1 newest"},
		},
		{
			name: "a policy not in the config is never deleted",
			inv: Inventory{Snapshots: []Snapshot{
				snap("snap-000000000000000a1", "renamed", "vol-000000000000000a1", 100*day),
				snap("snap-000000000000000a2", "renamed", "vol-000000000000000a1", 200*day),
			}, SnapshotsComplete: true},
			want: []string{
				"renamed keep snap-000000000000000a1 unknown_policy",
				"renamed keep snap-000000000000000a2 unknown_policy",
			},
		},
		{
			name: "a failed snapshot listing: no deletes, creates still go out",
			inv: Inventory{
				Instances: []Instance{running("i-000000000000000a1", nil, "vol-000000000000000a1")},
				Snapshots: []Snapshot{
					snap("snap-000000000000000a1", "default", "vol-000000000000000a1", 40*day),
					snap("snap-000000000000000a2", "default", "vol-000000000000000a1", 50*day),
				},
				SnapshotsComplete: false,
			},
			want: []string{
				"default create vol-000000000000000a1 due",
				"default keep snap-000000000000000a1 newest",
				"default keep snap-000000000000000a2 fail_closed",
			},
		},
		{
			name: "a missing start time blocks deletes of its volume only",
			inv: Inventory{Snapshots: []Snapshot{
				{ID: "snap-000000000000000a0", Owner: acct, Policy: "default", Volume: "vol-000000000000000a1", State: "completed"},
				snap("snap-000000000000000a1", "default", "vol-000000000000000a1", 40*day),
				snap("snap-000000000000000a2", "default", "vol-000000000000000a1", 50*day),
				snap("snap-000000000000000b1", "default", "vol-000000000000000b1", 40*day),
				snap("snap-000000000000000b2", "default", "vol-000000000000000b1", 50*day),
			}, SnapshotsComplete: true},
			want: []string{
				"default delete snap-000000000000000b2 expired",
				"default keep snap-000000000000000a0 unknown_time",
				"default keep snap-000000000000000a1 newest",
				"default keep snap-000000000000000a2 fail_closed",
				"default keep snap-000000000000000b1 newest",
			},
		},
		{
			name: "an unparseable expires tag blocks deletes of its volume",
			inv: Inventory{Snapshots: []Snapshot{
				snap("snap-000000000000000a1", "default", "vol-000000000000000a1", 40*day),
				func() Snapshot {
					s := snap("snap-000000000000000a2", "default", "vol-000000000000000a1", 50*day)
					s.Bad = "snapfleet:expires"
					return s
				}(),
			}, SnapshotsComplete: true},
			want: []string{
				"default keep snap-000000000000000a1 newest",
				"default keep snap-000000000000000a2 fail_closed",
			},
		},
		{
			name: "an unparseable volume tag blocks every delete of the policy in the scope",
			inv: Inventory{Snapshots: []Snapshot{
				{ID: "snap-000000000000000a0", Owner: acct, Policy: "default", Start: now.Add(-40 * day), State: "completed", Bad: "snapfleet:volume"},
				snap("snap-000000000000000b1", "default", "vol-000000000000000b1", 40*day),
				snap("snap-000000000000000b2", "default", "vol-000000000000000b1", 50*day),
			}, SnapshotsComplete: true},
			want: []string{
				"default keep snap-000000000000000a0 newest",
				"default keep snap-000000000000000b1 newest",
				"default keep snap-000000000000000b2 fail_closed",
			},
		},
		{
			name: "AWS Backup and DLM snapshots are kept and do not count",
			inv: Inventory{Snapshots: []Snapshot{
				func() Snapshot {
					s := snap("snap-000000000000000a0", "default", "vol-000000000000000a1", 1*day)
					s.Protected = true
					return s
				}(),
				func() Snapshot {
					s := snap("snap-000000000000000a3", "default", "vol-000000000000000a1", 90*day)
					s.Protected = true
					return s
				}(),
				snap("snap-000000000000000a1", "default", "vol-000000000000000a1", 40*day),
				snap("snap-000000000000000a2", "default", "vol-000000000000000a1", 50*day),
			}, SnapshotsComplete: true},
			want: []string{
				"default delete snap-000000000000000a2 expired",
				"default keep snap-000000000000000a1 newest",
				"default protected snap-000000000000000a0 protected",
				"default protected snap-000000000000000a3 protected",
			},
		},
		{
			name: "a pending snapshot does not count as the newest",
			inv: Inventory{Snapshots: []Snapshot{
				{ID: "snap-000000000000000a0", Owner: acct, Policy: "default", Volume: "vol-000000000000000a1", Start: now.Add(-time.Hour), State: "pending"},
				snap("snap-000000000000000a1", "default", "vol-000000000000000a1", 40*day),
			}, SnapshotsComplete: true},
			want: []string{
				"default keep snap-000000000000000a0 not_completed",
				"default keep snap-000000000000000a1 newest",
			},
		},
		{
			name: "deletes go on when the volume is gone",
			inv: Inventory{
				Instances: []Instance{},
				Snapshots: []Snapshot{
					snap("snap-000000000000000a1", "default", "vol-000000000000000a1", 40*day),
					snap("snap-000000000000000a2", "default", "vol-000000000000000a1", 50*day),
				},
				SnapshotsComplete: true,
			},
			want: []string{
				"default delete snap-000000000000000a2 expired",
				"default keep snap-000000000000000a1 newest",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv := tt.inv
			inv.Account, inv.Region = acct, region
			res := Decide(inv, mustConfig(t, tt.config), now)
			if got := brief(res.Decisions); !slices.Equal(got, tt.want) {
				t.Errorf("decisions:\n got %q\nwant %q", got, tt.want)
			}
			creates, deletes := 0, 0
			for _, d := range res.Decisions {
				if d.Account != acct || d.Region != region {
					t.Errorf("decision %+v: wrong scope", d)
				}
				switch d.Action {
				case ActionCreate:
					creates++
					ps := mustConfig(t, tt.config)
					p, _ := ps.Policy(d.Policy)
					if want := job.CreateKey(acct, region, d.Volume, d.Policy, p.PeriodStart(now)); d.Key != want {
						t.Errorf("create key %q, want %q", d.Key, want)
					}
					if d.Instance == "" || d.Device == "" {
						t.Errorf("create %+v lacks instance or device", d)
					}
				case ActionDelete:
					deletes++
					if want := job.DeleteKey(acct, region, d.Snapshot); d.Key != want {
						t.Errorf("delete key %q, want %q", d.Key, want)
					}
				default:
					if d.Key != "" {
						t.Errorf("%s decision has a key %q", d.Action, d.Key)
					}
				}
			}
			if creates != res.Creates || deletes != res.Deletes {
				t.Errorf("counts creates=%d deletes=%d, decisions say %d and %d", res.Creates, res.Deletes, creates, deletes)
			}
		})
	}
}

// TestDecidePeriodBoundaries: a snapshot counts as the period's, holding back its create,
// when its StartTime is in the period and no more than clockSkew after now; the same for
// a volume policy and an instance one.
func TestDecidePeriodBoundaries(t *testing.T) {
	t.Parallel()
	const half = `
policies:
  - name: half
    every: 12h
    retain: {max_age: 30d}
`
	configs := map[string]*config.Config{"volume": mustConfig(t, half), "instance": mustConfig(t, half+"    consistency: instance\n")}
	vol, inst := "vol-000000000000000a1", "i-000000000000000a1"
	tests := []struct {
		name      string
		now, snap time.Time
		wantDone  bool
		wantStart time.Time
	}{
		{"same period", at("2026-11-22T13:00:00Z"), at("2026-11-22T12:00:00Z"), true, at("2026-11-22T12:00:00Z")},
		{"one second before the period", at("2026-11-22T13:00:00Z"), at("2026-11-22T11:59:59Z"), false, at("2026-11-22T12:00:00Z")},
		{"first instant of a period", at("2026-11-23T00:00:00Z"), at("2026-11-22T23:59:59Z"), false, at("2026-11-23T00:00:00Z")},
		{"last instant of a period", at("2026-11-22T23:59:59Z"), at("2026-11-22T12:00:01Z"), true, at("2026-11-22T12:00:00Z")},
		{"ahead of now within the clock skew", at("2026-11-22T13:00:00Z"), at("2026-11-22T13:04:59Z"), true, at("2026-11-22T12:00:00Z")},
		{"ahead of now by the clock skew", at("2026-11-22T13:00:00Z"), at("2026-11-22T13:05:00Z"), false, at("2026-11-22T12:00:00Z")},
		{"future-dated in the period", at("2026-11-22T13:00:00Z"), at("2026-11-22T20:00:00Z"), false, at("2026-11-22T12:00:00Z")},
		{"in the next period within the skew", at("2026-11-22T23:58:00Z"), at("2026-11-23T00:01:00Z"), false, at("2026-11-22T12:00:00Z")},
		{"days in the future", at("2026-11-22T13:00:00Z"), at("2026-11-25T13:00:00Z"), false, at("2026-11-22T12:00:00Z")},
	}
	for _, tt := range tests {
		for consistency, cfg := range configs {
			t.Run(tt.name+"/"+consistency, func(t *testing.T) {
				t.Parallel()
				inv := Inventory{Account: acct, Region: region,
					Instances:         []Instance{running(inst, nil, vol)},
					Snapshots:         []Snapshot{{ID: "snap-000000000000000a1", Owner: acct, Policy: "half", Volume: vol, Start: tt.snap, State: "completed"}},
					SnapshotsComplete: true}
				res := Decide(inv, cfg, tt.now)
				d := res.Decisions[0]
				if got := d.Action == ActionSkip && d.Reason == reason.Done; got != tt.wantDone {
					t.Fatalf("decision %+v, want done=%v", d, tt.wantDone)
				}
				if !tt.wantDone {
					target := vol
					if consistency == "instance" {
						target = inst
					}
					if want := job.CreateKey(acct, region, target, "half", tt.wantStart); d.Action != ActionCreate || d.Key != want {
						t.Fatalf("decision %+v, want a create with key %q", d, want)
					}
				}
			})
		}
	}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDecideCounts(t *testing.T) {
	t.Parallel()
	inv := Inventory{Account: acct, Region: region,
		Instances: []Instance{
			running("i-000000000000000a1", nil, "vol-000000000000000a1", "vol-000000000000000a2"),
			// a multi-attached volume is one volume and one job
			running("i-000000000000000a2", nil, "vol-000000000000000a2"),
			instance("i-000000000000000a3", "stopped", nil, "vol-000000000000000a3"),
		},
		Snapshots: []Snapshot{
			snap("snap-000000000000000a1", "default", "vol-000000000000000a1", time.Hour),
			snap("snap-000000000000000a2", "gone", "vol-000000000000000a1", time.Hour),
			snap("snap-000000000000000a3", "gone", "vol-000000000000000a2", time.Hour),
			{ID: "snap-000000000000000f1", Owner: other, Policy: "default", Volume: "vol-000000000000000a1", Start: now, State: "completed"},
		},
		SnapshotsComplete: true}
	res := Decide(inv, config.Default(), now)
	res.Decisions = nil
	want := Result{Instances: 2, Volumes: 2, SnapshotsSeen: 3, ForeignSnapshots: 1,
		UnknownPolicies: map[string]int{"gone": 2}, Creates: 1, Kept: 3}
	if !reflect.DeepEqual(want, res) {
		t.Fatalf("result\n got %+v\nwant %+v", res, want)
	}
}

// TestDecideInstance: a policy with consistency: instance plans one create per instance
// (the instance's job key, the volumes in the detail), leaves out excluded volumes and,
// with exclude_boot, the root volume; an instance whose volumes all have this period's
// snapshot, or one carrying the instance's key, is done.
func TestDecideInstance(t *testing.T) {
	t.Parallel()
	cfg := mustConfig(t, `
policies:
  - name: crash
    consistency: instance
    exclude_boot: true
    select: {exclude_tags: {skip: "yes"}}
    retain: {max_age: 30d}
`)
	root := func(in Instance) Instance { in.Root = "/dev/xvda"; return in }
	period := cfg.Policies[0].PeriodStart(now)
	keyed := snap("snap-00000004", "crash", "vol-00000031", time.Hour)
	keyed.Job = job.CreateKey(acct, region, "i-00000003", "crash", period)
	inv := Inventory{Account: acct, Region: region, SnapshotsComplete: true,
		Instances: []Instance{
			root(running("i-00000001", nil, "vol-00000010", "vol-00000011", "vol-00000012", "vol-00000013")),
			root(running("i-00000002", nil, "vol-00000020", "vol-00000021")),
			root(running("i-00000003", nil, "vol-00000030", "vol-00000031", "vol-00000032")),
			root(running("i-00000004", map[string]string{"skip": "yes"}, "vol-00000040", "vol-00000041")),
			root(running("i-00000005", nil, "vol-00000050")),
		},
		VolumeTags: map[string]map[string]string{"vol-00000012": {"skip": "yes"}},
		Snapshots: []Snapshot{
			snap("snap-00000001", "crash", "vol-00000011", 30*time.Minute), // i-1 partly done: still due
			snap("snap-00000002", "crash", "vol-00000021", 30*time.Minute), // i-2 done
			snap("snap-00000003", "crash", "vol-00000020", 2*day),          // the boot volume's: irrelevant
			keyed, // i-3 carries its key: done although vol-32 has none
		},
	}
	res := Decide(inv, cfg, now)
	var got []string
	for _, d := range res.Decisions {
		if d.Snapshot == "" {
			got = append(got, strings.Join([]string{d.Instance, d.Volume, d.Action, d.Reason, d.Key, d.Detail}, "|"))
		}
	}
	sort.Strings(got)
	k1 := job.CreateKey(acct, region, "i-00000001", "crash", period)
	want := []string{
		"i-00000001|vol-00000010|skip|exclude_boot||",
		"i-00000001|vol-00000012|skip|excluded||",
		"i-00000001||create|due|" + k1 + "|volumes vol-00000011 vol-00000013",
		"i-00000002|vol-00000020|skip|exclude_boot||",
		"i-00000002||skip|done||volumes vol-00000021",
		"i-00000003|vol-00000030|skip|exclude_boot||",
		"i-00000003||skip|done||volumes vol-00000031 vol-00000032",
		"i-00000004||skip|excluded||",
		"i-00000005|vol-00000050|skip|exclude_boot||",
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("decisions:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.Creates != 1 || res.Instances != 5 || res.Volumes != 12 {
		t.Errorf("creates %d, instances %d, volumes %d; want 1, 5, 12", res.Creates, res.Instances, res.Volumes)
	}
	// The one create is one message of kind snapshots.create naming the instance.
	for _, d := range res.Decisions {
		if d.Action != ActionCreate {
			continue
		}
		msg, err := d.message("r1", now)
		if err != nil {
			t.Fatal(err)
		}
		j, err := job.Decode(msg.Body)
		if err != nil || j.Kind != job.KindCreateInstance || j.Instance != "i-00000001" || j.Volume != "" || msg.GroupID != acct+"/"+region+"/i-00000001" {
			t.Errorf("message %s (group %s): %+v, %v", msg.Body, msg.GroupID, j, err)
		}
	}
}

// TestMessageName: a volume's create job carries its instance's Name tag; a name the
// message cannot carry is left out rather than the job; an instance's job never carries
// one (the worker reads the instance).
func TestMessageName(t *testing.T) {
	t.Parallel()
	vol := Decision{Account: acct, Region: region, Policy: "daily", Action: ActionCreate, Reason: reason.Due,
		Volume: "vol-00000010", Instance: "i-00000001", Device: "/dev/xvda",
		Key: job.CreateKey(acct, region, "vol-00000010", "daily", now.Truncate(day))}
	inst := Decision{Account: acct, Region: region, Policy: "daily", Action: ActionCreate, Reason: reason.Due,
		Instance: "i-00000001", Key: job.CreateKey(acct, region, "i-00000001", "daily", now.Truncate(day))}
	tests := []struct {
		name string
		d    Decision
		tag  string
		want string
	}{
		{"name carried", vol, "web-1", "web-1"},
		{"no name", vol, "", ""},
		{"control character", vol, "web\x001", ""},
		{"too big for the message", vol, strings.Repeat("<", job.MaxName), ""},
		{"instance job", inst, "web-1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := tt.d
			d.InstanceName = tt.tag
			msg, err := d.message("r1", now)
			if err != nil {
				t.Fatalf("message: %v", err)
			}
			j, err := job.Decode(msg.Body)
			if err != nil {
				t.Fatalf("decoding %s: %v", msg.Body, err)
			}
			if j.Name != tt.want || j.Instance != d.Instance {
				t.Errorf("job name %q, instance %q; want %q, %q", j.Name, j.Instance, tt.want, d.Instance)
			}
		})
	}
	// A volume's create names its instance and device, or it is no job (DESIGN.md §5).
	noDevice, noInstance := vol, vol
	noDevice.Device, noInstance.Instance = "", ""
	for _, d := range []Decision{noDevice, noInstance} {
		if msg, err := d.message("r1", now); err == nil {
			t.Errorf("message of %+v = %s, want an error", d, msg.Body)
		}
	}
}

func TestInterleave(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ a, b, want []int }{
		{nil, nil, []int{}},
		{[]int{1, 3}, []int{2, 4}, []int{1, 2, 3, 4}},
		{[]int{1, 3, 5, 6}, []int{2, 4}, []int{1, 2, 3, 4, 5, 6}},
		{nil, []int{1, 2}, []int{1, 2}},
	} {
		if got := interleave(c.a, c.b); !slices.Equal(got, c.want) {
			t.Errorf("interleave(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

// TestDecideWithoutKeeps: a plan that neither shows nor logs its keep decisions (decide
// without keeps) counts the same, and holds every other decision the same, but no keep
// other than those it warns of; its deletes are decided in parts (deleteParts), joined in
// the order of one.
func TestDecideWithoutKeeps(t *testing.T) {
	t.Parallel()
	inv := benchInventory(1500, 10)
	inv.Snapshots = append(inv.Snapshots, Snapshot{ID: "snap-0future", Owner: acct, Policy: "daily", Volume: "vol-00000000000000001",
		Start: now.Add(48 * time.Hour), State: "completed"})
	cfg := mustConfig(t, `
policies:
  - name: daily
    retain: {max_age: 30d, min_keep: 2}
`)
	all, some := decide(inv, cfg, now, true), decide(inv, cfg, now, false)
	if n := deleteParts(3000); n < 2 {
		t.Fatalf("deleteParts(3000) = %d: the test needs the deletes decided in parts", n)
	}
	var want []Decision
	for _, d := range all.Decisions {
		if d.Action != ActionKeep || d.Reason == retention.KeptFuture || d.Reason == retention.KeptUnknownTime {
			want = append(want, d)
		}
	}
	if diff := cmp.Diff(want, some.Decisions); diff != "" {
		t.Errorf("decisions without keeps (-want +got):\n%s", diff)
	}
	if left := len(all.Decisions) - len(some.Decisions); left != all.Kept-1 || all.Kept < 400 || some.Deletes == 0 ||
		!slices.ContainsFunc(some.Decisions, func(d Decision) bool { return d.Reason == retention.KeptFuture }) {
		t.Errorf("%d of %d decisions left out, %d kept, %d deletes: want every keep left out but the future-dated one", left, len(all.Decisions), all.Kept, some.Deletes)
	}
	all.Decisions, some.Decisions = nil, nil
	if diff := cmp.Diff(all, some, cmp.AllowUnexported(Result{})); diff != "" {
		t.Errorf("counts differ (-with keeps +without):\n%s", diff)
	}
}
