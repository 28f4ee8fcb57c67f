package report

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/planner"
)

var _ EC2 = (*ec2.Client)(nil)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func testConfig(t testing.TB, extra string) *config.Config {
	t.Helper()
	c, err := config.Parse(strings.NewReader(`
policies:
  - name: daily
    select:
      instance_tags: {Backup: "true"}
      exclude_tags: {"snapfleet:skip": "true"}
    every: 24h
    retain: {max_age: 30d}
  - name: db
    select:
      instance_tags: {Role: db}
    every: 6h
    retain: {keep_last: 4}
    consistency: instance
    exclude_boot: true
` + extra))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fixtureScope is one account-region: i-1 (Backup) with vol-a (ok), vol-b (late by 2h),
// vol-c (missing), vol-d (opted out by its tag); i-2 untagged with vol-e in use
// (unprotected); i-3 a db instance (exclude_boot) with root vol-f (opted out) and vol-1
// (ok under db); a stopped... and a copy, an archived and an application snapshot.
func fixtureScope(cfg *config.Config) *Scope {
	sc := NewScope(cfg, "111111111111", "us-east-1")
	sc.Instances = []planner.Instance{
		{ID: "i-1", State: "running", Tags: map[string]string{"Backup": "true"}, Root: "/dev/sda1",
			Volumes: []planner.Attachment{{Volume: "vol-a", Device: "/dev/sda1"}, {Volume: "vol-b", Device: "/dev/sdf"},
				{Volume: "vol-c", Device: "/dev/sdg"}, {Volume: "vol-d", Device: "/dev/sdh"}}},
		{ID: "i-2", State: "running", Volumes: []planner.Attachment{{Volume: "vol-e", Device: "/dev/sda1"}}},
		{ID: "i-3", State: "running", Tags: map[string]string{"Role": "db"}, Root: "/dev/sda1",
			Volumes: []planner.Attachment{{Volume: "vol-f", Device: "/dev/sda1"}, {Volume: "vol-1", Device: "/dev/sdf"}}},
	}
	for _, v := range []string{"vol-a", "vol-b", "vol-c", "vol-e", "vol-f", "vol-1"} {
		sc.Volumes[v] = Volume{ID: v, State: "in-use"}
	}
	sc.Volumes["vol-d"] = Volume{ID: "vol-d", State: "in-use", Tags: map[string]string{"snapfleet:skip": "true"}}
	gib := int64(1 << 30)
	for _, s := range []Snapshot{
		{ID: "snap-a1", Policy: "daily", Volume: "vol-a", Start: now.Add(-49 * time.Hour), State: "completed", Bytes: 10 * gib},
		{ID: "snap-a2", Policy: "daily", Volume: "vol-a", Start: now.Add(-time.Hour), State: "completed", Bytes: 10 * gib, Consistency: Application},
		{ID: "snap-b", Policy: "daily", Volume: "vol-b", Start: now.Add(-32 * time.Hour), State: "completed", Bytes: 20 * gib, Archived: true},
		{ID: "snap-c", Policy: "daily", Volume: "vol-c", Start: now.Add(-time.Hour), State: "error", Bytes: 20 * gib},
		{ID: "snap-p", Policy: "daily", Volume: "vol-c", Start: now.Add(-time.Minute), State: "pending", Bytes: 20 * gib},
		{ID: "snap-1", Policy: "db", Volume: "vol-1", Start: now.Add(-2 * time.Hour), State: "completed", Bytes: 40 * gib,
			CostTags: map[string]string{"Team": "data"}},
		{ID: "snap-copy", Policy: "daily", Volume: "vol-c", Start: now.Add(-time.Hour), State: "completed", Bytes: 20 * gib, Copy: true},
	} {
		sc.Add(s)
	}
	return sc
}

// TestCompute: each selected volume gets its status against every + grace, worst first;
// unselected in-use volumes are unprotected unless an exclude tag or exclude_boot opts
// them out; error snapshots never count as recovery points; copies never count for RPO.
func TestCompute(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "report:\n  cost_tags: [Team]\n")
	rep := Compute([]*Scope{fixtureScope(cfg)}, cfg, now)
	var got []string
	for _, v := range rep.Volumes {
		got = append(got, v.Policy+"/"+v.Volume+"="+v.Status+" "+v.LateBy)
	}
	want := []string{"daily/vol-c=missing ", "daily/vol-b=late 2h0m0s", "db/vol-1=ok ", "daily/vol-a=ok "}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("volumes %v, want %v", got, want)
	}
	if len(rep.Unprotected) != 1 || rep.Unprotected[0].Volume != "vol-e" {
		t.Errorf("unprotected %+v, want vol-e", rep.Unprotected)
	}
	var opted []string
	for _, o := range rep.OptedOut {
		opted = append(opted, o.Volume+": "+o.Reason)
	}
	if strings.Join(opted, ";") != "vol-d: policy daily: volume tag snapfleet:skip=true;vol-f: policy db: exclude_boot" {
		t.Errorf("opted out %v", opted)
	}
	p := rep.RecoveryPoints
	if p.Total != 5 || p.Application != 1 || p.Crash != 4 || p.Archived != 1 || p.Copies != 1 ||
		len(p.CopiesByDestination) != 1 || p.CopiesByDestination[0].Key != "111111111111/us-east-1" {
		t.Errorf("recovery points %+v", p)
	}
	h := rep.Headline
	if h.VolumesOK != 2 || h.VolumesLate != 1 || h.VolumesMissing != 1 || h.Unprotected != 1 || h.OptedOut != 1+1 ||
		h.ErrorSnapshots != 1 || h.PendingSnapshots != 1 {
		t.Errorf("headline %+v", h)
	}
	if len(rep.ByPolicy) != 2 || rep.ByPolicy[0] != (StatusCount{Key: "daily", OK: 1, Late: 1, Missing: 1}) {
		t.Errorf("by policy %+v", rep.ByPolicy)
	}
	if s := rep.ByScope; len(s) != 1 || s[0] != (StatusCount{Key: "111111111111/us-east-1", OK: 2, Late: 1, Missing: 1, Unprotected: 1, OptedOut: 2}) {
		t.Errorf("by scope %+v", s)
	}
}

// TestGrace: the grace is a quarter of every by default, report.grace for all, and
// report.policy_grace for one policy; a volume exactly at its RPO is ok.
func TestGrace(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		extra string
		age   time.Duration
		want  string
	}{
		{"", 30 * time.Hour, StatusOK},
		{"", 30*time.Hour + time.Second, StatusLate},
		{"report:\n  grace: 1h\n", 25*time.Hour + time.Second, StatusLate},
		{"report:\n  grace: 1h\n", 25 * time.Hour, StatusOK},
		{"report:\n  grace: 1h\n  policy_grace: {daily: 0}\n", 24*time.Hour + time.Second, StatusLate},
		{"report:\n  policy_grace: {daily: 48h}\n", 71 * time.Hour, StatusOK},
	} {
		cfg := testConfig(t, tt.extra)
		sc := NewScope(cfg, "111111111111", "us-east-1")
		sc.Instances = []planner.Instance{{ID: "i-1", State: "running", Tags: map[string]string{"Backup": "true"},
			Volumes: []planner.Attachment{{Volume: "vol-a", Device: "/dev/sdf"}}}}
		sc.Add(Snapshot{ID: "snap-1", Policy: "daily", Volume: "vol-a", Start: now.Add(-tt.age), State: "completed"})
		if got := Compute([]*Scope{sc}, cfg, now).Volumes[0].Status; got != tt.want {
			t.Errorf("%q, age %s: %s, want %s", tt.extra, tt.age, got, tt.want)
		}
	}
}

type drills []DrillRecord

func (d drills) LastDrills(context.Context) ([]DrillRecord, error) { return d, nil }

// TestDrillsAndDeadLetters: the newest drill of each policy, "never" for a policy not
// drilled, "no drills recorded" without records; dead letters counted by reason.
func TestDrillsAndDeadLetters(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "")
	d := lastDrillPerPolicy(cfg, nil)
	if d.Note != NoDrills || len(d.ByPolicy) != 2 || d.ByPolicy[0].Last != nil {
		t.Errorf("no records: %+v", d)
	}
	d = lastDrillPerPolicy(cfg, drills{{Drill: "d1", Policy: "daily", At: now.Add(-time.Hour), Snapshot: "snap-old", OK: true, Seconds: 9},
		{Drill: "d2", Policy: "daily", At: now.Add(-time.Minute), Snapshot: "snap-a", OK: true, Seconds: 3},
		{Drill: "d2", Policy: "daily", At: now, Snapshot: "snap-new", OK: false},
		{Drill: "d2", Policy: "daily", At: now, Snapshot: "snap-b", OK: true, Seconds: 5}})
	if d.Note != "" || d.ByPolicy[0].Last == nil || d.ByPolicy[0].Last.Snapshot != "snap-new" || d.ByPolicy[1].Last != nil {
		t.Errorf("records: %+v", d)
	}
	// The figures are those of the newest drill (d2) only: 2 of 3 restored, p50 3 s, p99 5 s.
	if f := d.ByPolicy[0].Drill; f == nil || f.Tried != 3 || f.Succeeded != 2 || f.P50 != 3 || f.P99 != 5 {
		t.Errorf("figures of the newest drill: %+v", f)
	}
	dl := deadLetters("file:q.db", []DeadLetter{{Reason: "refused_newer"}, {Reason: "invalid_message"}, {Reason: "invalid_message"}, {}})
	if dl.Total != 4 || len(dl.ByReason) != 3 || dl.ByReason[0] != (Count{Key: "invalid_message", Count: 2}) {
		t.Errorf("dead letters %+v", dl)
	}
}

// TestWriteText: the text report gives the headline, the per account-region counts, the
// worst offenders with how late, the unprotected and opted-out volumes, the failures, the
// labelled cost and the drills.
func TestWriteText(t *testing.T) {
	t.Parallel()
	rep := fixtureReport(t)
	var b strings.Builder
	rep.WriteText(&b)
	out := b.String()
	for _, re := range []string{
		`(?m)^volumes late\s+1$`, `(?m)^volumes missing\s+1$`, `(?m)^unprotected\s+1$`, `(?m)^opted out\s+2$`,
		`(?m)^error snapshots\s+1$`, `(?m)^dead letters\s+3$`, `(?m)^estimated monthly cost\s+\$5\.25 \(upper bound\)$`,
		`(?m)^111111111111/us-east-1\s+2\s+1\s+1\s+1\s+2$`,
		`(?m)^missing\s+111111111111\s+us-east-1\s+daily\s+vol-c\s+i-1\s+never\s+-$`,
		`(?m)^late\s+111111111111\s+us-east-1\s+daily\s+vol-b\s+i-1\s+\S+\s+2h0m0s$`,
		`(?m)^vol-e\s+111111111111\s+us-east-1\s+i-2$`, `(?m)^vol-d .*snapfleet:skip=true$`,
		`(?m)^invalid_message\s+2$`, `(?m)^snap-c\s+error\s`, `(?m)^snap-p\s+pending\s`,
		`cost: estimate, upper bound`, `(?m)^daily\s+\S+\s+1 of 1\s+42\s+42$`, `(?m)^db\s+never`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("text report has no line matching %s:\n%s", re, out)
		}
	}
}
