package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/snapfleet/snapfleet/internal/audit"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// trail runs `snapfleet audit --output json` with args and returns its records.
func (e *e2e) trail(args ...string) []audit.Record {
	e.t.Helper()
	var res auditResult
	e.runInto(0, &res, append([]string{"audit"}, args...)...)
	if res.Total != len(res.Records) || res.Unreadable != 0 {
		e.t.Fatalf("audit %v: total %d, %d records, %d unreadable", args, res.Total, len(res.Records), res.Unreadable)
	}
	return res.Records
}

// forgedDelete is a well-formed delete job for a snapshot the plan would keep.
func forgedDelete(t *testing.T, snapshot, volume string) string {
	t.Helper()
	b, err := job.Encode(job.Job{V: 1, Kind: job.KindDelete, Key: job.DeleteKey(motoAccount, mototest.Region, snapshot),
		Account: motoAccount, Region: mototest.Region, Policy: "daily", Snapshot: snapshot, Volume: volume,
		Run: "forged", PlannedAt: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAuditTrail: two runs of `snapfleet run` on the embedded queue, 31 days apart, leave
// one audit record per create and per delete, in order, with their reasons, snapshots and
// the process that acted; a forged delete of a kept snapshot is recorded as refused and a
// malformed message as dead-lettered; `audit --snapshot` finds a deleted snapshot's
// creation and deletion, `--volume` a volume's records, `--since` cuts older ones.
func TestAuditTrail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	_, vols := e.instancesWithData(ctx, 1, nil)
	volumes := vols[firstKey(vols)]
	db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")
	e.jsonCLI(0, "run", "--queue", db, "--now", e.at(0), "--allow-clock-skew")
	day0 := managedByVolume(e.snapshots(ctx))
	mid := time.Now().UTC()
	// Day 31: the new snapshots first (the day-0 ones are each volume's only one), then a
	// second run deletes the expired day-0 ones.
	if r := e.jsonCLI(0, "run", "--queue", db, "--now", e.at(31*day), "--allow-clock-skew"); num(t, r, "work.created") != 2 {
		t.Fatalf("day-31 run: %v, want 2 created", r)
	}
	if r := e.jsonCLI(0, "run", "--queue", db, "--now", e.at(31*day), "--allow-clock-skew"); num(t, r, "work.deleted") != 2 {
		t.Fatalf("second day-31 run: %v, want 2 deleted", r)
	}

	recs := e.trail("--queue", db)
	if len(recs) != 6 {
		t.Fatalf("audit: %d records, want 6 (4 created, 2 deleted): %+v", len(recs), recs)
	}
	host, _ := os.Hostname()
	keys := map[string]bool{}
	for i, rec := range recs {
		if keys[rec.Key] {
			t.Errorf("job %s recorded twice", rec.Key)
		}
		keys[rec.Key] = true
		if i > 0 && rec.At.Before(recs[i-1].At) {
			t.Errorf("record %d at %s is before record %d at %s", i, rec.At, i-1, recs[i-1].At)
		}
		if rec.Host != host || rec.PID <= 0 || rec.Run == "" || rec.Account != motoAccount || rec.Region != mototest.Region ||
			rec.Policy != "daily" || !strings.HasPrefix(rec.Snapshot, "snap-") || !strings.HasPrefix(rec.Volume, "vol-") {
			t.Errorf("record %d: %+v", i, rec)
		}
		want := map[bool]string{true: "created/due", false: "deleted/expired"}[i < 4]
		if got := rec.Action + "/" + rec.Reason; got != want {
			t.Errorf("record %d: %s, want %s: %+v", i, got, want, rec)
		}
	}
	for i, rec := range recs[:2] {
		if rec.At.After(mid) || day0[rec.Volume] == nil || aws.ToString(day0[rec.Volume][0].SnapshotId) != rec.Snapshot {
			t.Errorf("day-0 record %d: %+v, want the creation of %s's day-0 snapshot", i, rec, rec.Volume)
		}
	}

	// A deleted snapshot: its creation and its deletion, in that order.
	gone := aws.ToString(day0[volumes[0]][0].SnapshotId)
	got := e.trail("--queue", db, "--snapshot", gone)
	if len(got) != 2 || got[0].Action != "created" || got[1].Action != "deleted" || got[1].Snapshot != gone || got[1].Kind != job.KindDelete {
		t.Errorf("audit --snapshot %s: %+v, want its creation then its deletion", gone, got)
	}
	if got := e.trail("--queue", db, "--volume", volumes[1]); len(got) != 3 {
		t.Errorf("audit --volume %s: %d records, want 3 (2 created, 1 deleted): %+v", volumes[1], len(got), got)
	}
	if got := e.trail("--queue", db, "--since", mid.Format(time.RFC3339Nano)); len(got) != 4 {
		t.Errorf("audit --since the middle: %d records, want the day-31 runs' 4", len(got))
	}
	if got := e.trail("--queue", db, "--since", "1h"); len(got) != 6 {
		t.Errorf("audit --since 1h: %d records, want all 6", len(got))
	}
	text := e.cli("audit", "--queue", db, "--snapshot", gone)
	if lines := strings.Split(strings.TrimSpace(text.stdout), "\n"); text.code != 0 || len(lines) != 4 || lines[0] != "2 audit records" ||
		!strings.Contains(lines[3], "deleted") || !strings.Contains(lines[3], "expired") || !strings.Contains(lines[3], gone) {
		t.Errorf("audit --snapshot in text: exit %d\n%s", text.code, text.stdout)
	}

	// A forged delete of a volume's newest snapshot, and a malformed message.
	newest := ""
	for _, s := range managedByVolume(e.snapshots(ctx))[volumes[0]] {
		newest = aws.ToString(s.SnapshotId)
	}
	poison := `{"v":1,"kind":"snapshot.delete","key":"nope"}`
	e.sendRaw(ctx, db, forgedDelete(t, newest, volumes[0]), poison)
	e.jsonCLI(1, "run", "--queue", db, "--now", e.at(31*day), "--allow-clock-skew")
	got = e.trail("--queue", db, "--snapshot", newest)
	if len(got) != 2 || got[1].Action != "refused" || got[1].Reason != "refused_retention" || got[1].Run != "forged" || got[1].Error == "" {
		t.Errorf("audit --snapshot %s: %+v, want its creation and the refused delete", newest, got)
	}
	all := e.trail("--queue", db)
	var dead []audit.Record
	for _, rec := range all {
		if rec.Action == "dead_lettered" {
			dead = append(dead, rec)
		}
	}
	if len(all) != 8 || len(dead) != 1 || dead[0].Reason != "invalid_message" || dead[0].Message != poison {
		t.Errorf("audit after the forged and malformed jobs: %d records, dead letters %+v", len(all), dead)
	}
}

func firstKey(m map[string][]string) string {
	for k := range m {
		return k
	}
	return ""
}

// TestAuditUsage: bad flags of `snapfleet audit` are exit 2 with one line naming the flag
// or value, before any file is opened; an SQS queue says where a fleet's trail is.
func TestAuditUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "file:" + filepath.Join(dir, "q.db")
	if err := os.WriteFile(filepath.Join(dir, "q.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"audit"}, "--queue is required"},
		{[]string{"audit", "--queue", db, "--snapshot", "snap-nothex!"}, `"snap-nothex!"`},
		{[]string{"audit", "--queue", db, "--volume", "v1"}, `--volume: "v1"`},
		{[]string{"audit", "--queue", db, "--volume", "vol-0123456789abcdef0", "--snapshot", "snap-0123456789abcdef0"}, "not both"},
		{[]string{"audit", "--queue", db, "--since", "yesterday"}, `--since "yesterday"`},
		{[]string{"audit", "--queue", "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"}, "snapfleet.Audit events"},
		{[]string{"audit", "--queue", "file:" + filepath.Join(dir, "missing.db")}, "missing.db"},
		{[]string{"audit", "--queue", db, "--output", "yaml"}, "--output"},
	} {
		r := runBare(t, c.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || len(lines) != 1 || !strings.Contains(lines[0], c.want) || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q: want exit 2 and one line with %q", c.args, r.code, r.stdout, r.stderr, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); err == nil {
		t.Errorf("audit made the missing queue file")
	}
}

// TestAuditEvents: with events.bus set, workers on an SQS queue (which keeps no journal)
// publish one snapfleet.Audit event per create and per dead letter, which a rule routes on
// (here to SQS, as deploy/audit.yaml routes them to CloudWatch Logs).
func TestAuditEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.config = writeFile(t, "events.yaml", testConfig+"events:\n  bus: ops\n")
	read := e.busQueue(ctx, "ops", append(outcomeTypes, "snapfleet.Audit")...)
	e.instancesWithData(ctx, 1, nil)
	url := e.sqsQueues(ctx, "jobs")
	now := e.at(0)
	e.jsonCLI(0, "plan", "--queue", url, "--now", now)
	poison := `{"v":1,"kind":"snapshot.create","key":"oops"}`
	e.sendRaw(ctx, url, poison)
	if w := e.workers(1, url, "--now", now, "--allow-clock-skew"); w["created"] != 2 || w["dead_lettered"] != 1 {
		t.Fatalf("worker %v, want 2 created and 1 dead-lettered", w)
	}
	actions := map[string]int{}
	others := 0
	for _, ev := range read(6) { // 3 audit records, a PlanSummary, a JobFailed, a WorkSummary
		if ev["detail-type"] != "snapfleet.Audit" {
			others++
			continue
		}
		d := ev["detail"].(map[string]any)
		actions[d["action"].(string)+"/"+d["reason"].(string)]++
		if d["host"] == "" || d["pid"] == nil {
			t.Errorf("audit event without the worker's identity: %v", d)
		}
		if d["action"] == "created" {
			res, _ := ev["resources"].([]any)
			if len(res) != 1 || !strings.HasSuffix(res[0].(string), ":snapshot/"+d["snapshot"].(string)) {
				t.Errorf("created event: resources %v, want the snapshot's ARN", ev["resources"])
			}
		}
		if d["action"] == "dead_lettered" && d["message"] != poison {
			t.Errorf("dead-letter event: message %v, want the poison message", d["message"])
		}
	}
	if actions["created/due"] != 2 || actions["dead_lettered/invalid_message"] != 1 || others != 3 {
		t.Errorf("audit events %v and %d others, want 2 created/due, 1 dead_lettered/invalid_message, 3 others", actions, others)
	}
}

// TestAuditPlanHeld: the deletes a plan refuses — held by the circuit breaker here — are
// audit records of kind plan, one per snapshot, with the reason and what held it; a dry
// run of the same plan writes none.
func TestAuditPlanHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.setConfig(`
policies:
  - name: last2
    select: {instance_tags: {Backup: last2}}
    retain: {keep_daily: 2}
`)
	ids, vols := e.instancesWithData(ctx, 1, map[string]string{"Backup": "last2"})
	data := vols[ids[0]][1]
	expired := map[string]bool{}
	for i := 1; i <= 5; i++ {
		id := e.snapshotAt(ctx, data, e.start.Add(-time.Duration(i)*day), map[string]string{tag.Policy: "last2", tag.Volume: data})
		if i > 2 {
			expired[id] = true
		}
	}
	now := e.at(0)
	db := "file:" + filepath.Join(t.TempDir(), "held.db")
	e.jsonCLI(1, "plan", "--queue", db, "--now", now, "--dry-run") // exit 1: the breaker
	if p := e.jsonCLI(1, "plan", "--queue", db, "--now", now); num(t, p, "held") != 3 {
		t.Fatalf("plan: %v, want 3 deletes held by the breaker", p)
	}
	recs := e.trail("--queue", db)
	if len(recs) != 3 {
		t.Fatalf("audit: %d records, want the 3 held deletes (none from the dry run): %+v", len(recs), recs)
	}
	for _, r := range recs {
		if r.Kind != "plan" || r.Action != "held" || r.Reason != "circuit_breaker" || !expired[r.Snapshot] || r.Volume != data ||
			r.Policy != "last2" || r.Run == "" || r.Host == "" || r.Error == "" {
			t.Errorf("record %+v, want a held delete of an expired snapshot of %s", r, data)
		}
	}
}

// TestAuditInstance: an instance job (consistency: instance, one CreateSnapshots) has one
// created record per snapshot it made, naming the instance, so `audit --snapshot` finds
// the creation of every volume's snapshot.
func TestAuditInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.config = writeFile(t, "crash.yaml", crashPolicy)
	ids, _ := e.instancesWithData(ctx, 1, nil)
	db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")
	e.jsonCLI(0, "run", "--queue", db, "--now", e.at(0), "--allow-clock-skew")
	snaps := managedByVolume(e.snapshots(ctx))
	if len(snaps) != 2 {
		t.Fatalf("%d volumes with snapshots, want 2", len(snaps))
	}
	for vol, ss := range snaps {
		id := aws.ToString(ss[0].SnapshotId)
		got := e.trail("--queue", db, "--snapshot", id)
		if len(got) != 1 || got[0].Action != "created" || got[0].Instance != ids[0] || got[0].Kind != job.KindCreateInstance {
			t.Errorf("audit --snapshot %s (of %s): %+v, want its creation by the instance job", id, vol, got)
		}
	}
}
