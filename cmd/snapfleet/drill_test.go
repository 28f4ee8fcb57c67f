package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/recovery"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/faultproxy"
	"github.com/snapfleet/snapfleet/queue"
)

// journalDrills reads the drill stream of an embedded queue's journal.
func journalDrills(t *testing.T, db string) []recovery.Record {
	t.Helper()
	q, err := queue.Open(context.Background(), db, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	jr, ok := queue.JournalOf(q)
	if !ok {
		t.Fatalf("%s keeps no journal", db)
	}
	out, err := drillRecords(context.Background(), jr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// volumeIDs is the set of volume ids moto holds.
func (e *e2e) volumeIDs(ctx context.Context) []string {
	var ids []string
	for id := range e.volumes(ctx) {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// TestDrill: a drill restores a seeded sample (one per policy first), each volume tagged
// with its drill id, and deletes exactly the volumes it created: a volume named like a
// drill's and a young volume of another drill stay, as does every other volume. Results
// are kept in the embedded queue's journal and published as snapfleet.DrillResult; the
// output gives per policy tried, succeeded and time-to-available.
func TestDrill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	w := e.recoveryWorld(ctx)
	// A second policy with one point, so the sample of 2 takes one of each.
	weekly := e.snapshotAt(ctx, w.inst.Root, time.Now().Add(-5*day), map[string]string{tag.Policy: "weekly", tag.Volume: w.inst.Root})
	e.moto.ShiftClock(t, 0)
	e.setConfig("events: {bus: drills}\npolicies:\n  - name: daily\n    retain: {max_age: 30d}\n  - name: weekly\n    retain: {max_age: 90d}\n")
	read := e.busQueue(ctx, "drills", "snapfleet.DrillResult")
	lookalike := e.fleet.Volume(ctx)
	e.fleet.Tag(ctx, lookalike, map[string]string{"Name": "snapfleet-drill", "snapfleet:drill-like": "x"})
	other := e.fleet.Volume(ctx)
	e.fleet.Tag(ctx, other, map[string]string{tag.Drill: "another-drill"})
	before := e.volumeIDs(ctx)
	proxy := faultproxy.Start(t, e.moto.Endpoint)
	e.env = proxy.Env()

	db := "file:" + filepath.Join(t.TempDir(), "drill.db")
	var res drillResult
	e.runInto(0, &res, "drill", "--queue", db, "--sample", "2", "--seed", "7", "--config", e.config)
	if res.Enqueued != 2 || len(res.Restores) != 2 || res.Failed != 0 || len(res.Policies) != 2 {
		t.Fatalf("drill: %+v, want 2 restores, one per policy, all ok", res)
	}
	for _, p := range res.Policies {
		if p.Tried != 1 || p.Succeeded != 1 || p.P50 <= 0 || p.P99 < p.P50 || p.LastDrill.IsZero() {
			t.Errorf("policy %+v: want 1 tried, 1 succeeded, a time-to-available", p)
		}
	}
	sawWeekly := false
	for _, r := range res.Restores {
		sawWeekly = sawWeekly || r.Snapshot == weekly
		if !r.OK || r.Volume == "" || r.Drill != res.Drill {
			t.Errorf("restore %+v", r)
		}
	}
	if !sawWeekly {
		t.Errorf("the sample %+v misses the one weekly point %s", res.Restores, weekly)
	}
	if after := e.volumeIDs(ctx); !slices.Equal(after, before) {
		t.Fatalf("volumes after the drill %v, before %v: the drill must delete exactly what it made", after, before)
	}
	if c, d := proxy.Count("CreateVolume").Calls, proxy.Count("DeleteVolume").Calls; c != 2 || d != 2 {
		t.Fatalf("%d CreateVolume and %d DeleteVolume calls, want 2 and 2", c, d)
	}
	if got := journalDrills(t, db); len(got) != 2 || got[0].Drill != res.Drill {
		t.Fatalf("journal: %+v, want the 2 restores of %s", got, res.Drill)
	}
	// report --queue reads the same journal: each drilled policy's figures.
	var rep struct {
		Drills struct {
			ByPolicy []struct {
				Policy string
				Drill  *struct{ Tried, Succeeded int }
			} `json:"by_policy"`
		}
	}
	e.runInto(0, &rep, "report", "--queue", db, "--config", e.config)
	drilled := 0
	for _, p := range rep.Drills.ByPolicy {
		if p.Drill != nil {
			drilled += p.Drill.Succeeded
		}
	}
	if drilled != 2 {
		t.Fatalf("report's drills %+v, want 2 restores succeeded over the policies", rep.Drills.ByPolicy)
	}
	evs := read(2)
	n := 0
	for _, ev := range evs {
		if ev["detail-type"] == "snapfleet.DrillResult" {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d DrillResult events of %v, want 2", n, evs)
	}
	// Same seed, same sample.
	var again drillResult
	e.runInto(0, &again, "drill", "--queue", db, "--sample", "2", "--seed", "7", "--config", e.config)
	snapsOf := func(r drillResult) []string {
		var ids []string
		for _, rec := range r.Restores {
			ids = append(ids, rec.Snapshot)
		}
		slices.Sort(ids)
		return ids
	}
	if !slices.Equal(snapsOf(again), snapsOf(res)) || again.Drill == res.Drill {
		t.Fatalf("same seed: drill %s sampled %v, drill %s sampled %v", again.Drill, snapsOf(again), res.Drill, snapsOf(res))
	}
}

// TestDrillCrashAndFailure: a drill killed after CreateVolume leaves a volume tagged with
// its drill id, which the next drill (once it is older than --stale) deletes; a restore
// that fails (CreateVolume errors, injected) is reported and gives exit 1.
func TestDrillCrashAndFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.recoveryWorld(ctx)
	before := e.volumeIDs(ctx)
	proxy := faultproxy.Start(t, e.moto.Endpoint)
	e.env = proxy.Env()
	hold := proxy.Add(faultproxy.Rule{Action: "CreateVolume", LatencyAfter: time.Minute})

	cmd := exec.Command(binary, "drill", "--queue", "file:"+filepath.Join(t.TempDir(), "crash.db"), "--sample", "1", "--config", e.config)
	cmd.Env = append(append(os.Environ(), e.moto.Env()...), e.env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var left string
	for deadline := time.Now().Add(20 * time.Second); left == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for id, v := range e.volumes(ctx) {
			if volumeTags(v)[tag.Drill] != "" {
				left = id
			}
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if left == "" {
		t.Fatal("the drill made no volume before it was killed")
	}
	proxy.Remove(hold)

	// Not yet stale: the next drill leaves it (it may be a running drill's).
	var res drillResult
	e.runInto(0, &res, "drill", "--queue", "file:"+filepath.Join(t.TempDir(), "next.db"), "--sample", "1", "--config", e.config)
	if _, ok := e.volumes(ctx)[left]; !ok || len(res.Cleaned) != 0 {
		t.Fatalf("a young drill volume %s was deleted (cleaned %v)", left, res.Cleaned)
	}
	later := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	e.runInto(0, &res, "drill", "--queue", "file:"+filepath.Join(t.TempDir(), "later.db"), "--sample", "1", "--now", later, "--config", e.config)
	if len(res.Cleaned) != 1 || res.Cleaned[0] != left {
		t.Fatalf("cleaned %v, want the crashed drill's %s", res.Cleaned, left)
	}
	if after := e.volumeIDs(ctx); !slices.Equal(after, before) {
		t.Fatalf("volumes %v, want %v", after, before)
	}

	proxy.Add(faultproxy.Rule{Action: "CreateVolume", Fault: faultproxy.Error, Code: "InvalidParameterValue", Status: 400})
	r := e.cli("drill", "--queue", "file:"+filepath.Join(t.TempDir(), "fail.db"), "--sample", "1", "--output", "json", "--config", e.config)
	var failed drillResult
	if err := json.Unmarshal([]byte(r.stdout), &failed); err != nil || r.code != 1 {
		t.Fatalf("failing drill: exit %d, %v\n%s\n%s", r.code, err, r.stdout, tail(r.stderr))
	}
	if failed.Failed != 1 || len(failed.Restores) != 1 || failed.Restores[0].OK || !strings.Contains(failed.Restores[0].Error, "InvalidParameterValue") ||
		failed.Policies[0].Tried != 1 || failed.Policies[0].Succeeded != 0 {
		t.Fatalf("failing drill: %+v, want one failed restore reported", failed)
	}
	text := e.cli("drill", "--queue", "file:"+filepath.Join(t.TempDir(), "fail2.db"), "--sample", "1", "--config", e.config)
	if text.code != 1 || !strings.Contains(text.stdout, "FAILED ") {
		t.Fatalf("failing drill, text: exit %d\n%s", text.code, text.stdout)
	}
}

// TestRestoredVolumeManaged: a restored volume attached to an instance a policy selects is
// snapshotted like any other volume, its snapshots tagged with its own id, and it never
// counts toward the retention of the volume it was restored from: with the source's
// instance stopped, the source's expired snapshots go but the newest (the floor) stays.
func TestRestoredVolumeManaged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	w := e.recoveryWorld(ctx)
	e.fleet.Stop(ctx, w.inst.ID)
	target := e.fleet.Instances(ctx, 1, 0, nil)[0]
	e.setConfig("max_delete_fraction: 1\npolicies:\n  - name: daily\n    retain: {max_age: 12h, min_keep: 1}\n")
	r := e.restore(0, "--volume", w.inst.Data[0], "--attach", target.ID, "--device", "/dev/sdh")
	db := "file:" + filepath.Join(t.TempDir(), "jobs.db")
	var out runResult
	e.runInto(0, &out, "run", "--queue", db, "--config", e.config)
	snaps := e.snapshots(ctx)
	byVol := managedByVolume(snaps)
	if len(byVol[r.Volume]) != 1 {
		t.Fatalf("the restored volume %s has %d managed snapshots, want 1", r.Volume, len(byVol[r.Volume]))
	}
	if tags := tagsOf(byVol[r.Volume][0]); tags[tag.Volume] != r.Volume || tags[tag.Instance] != target.ID || tags[tag.RestoredFrom] != "" {
		t.Fatalf("the restored volume's snapshot is tagged %v", tags)
	}
	for i, id := range w.data {
		if _, ok := snaps[id]; ok != (i == 2) {
			t.Errorf("source snapshot %d (%s) exists %t; want only the newest kept (the floor)", i, id, ok)
		}
	}
	if _, ok := volumeTags(e.volumes(ctx)[r.Volume])[tag.Policy]; ok {
		t.Fatalf("the restored volume carries the managed marker")
	}
}

// TestDrillThroughSQS: with an SQS --queue, drill only enqueues its volume.drill jobs
// (nothing restored yet); `snapfleet work` restores and deletes them, and publishes each
// result as a snapfleet.DrillResult event.
func TestDrillThroughSQS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.recoveryWorld(ctx)
	e.setConfig("events: {bus: fleet-drills}\npolicies:\n  - name: daily\n    retain: {max_age: 30d}\n")
	read := e.busQueue(ctx, "fleet-drills", "snapfleet.DrillResult")
	url := e.sqsQueues(ctx, "drills")
	before := e.volumeIDs(ctx)
	proxy := faultproxy.Start(t, e.moto.Endpoint)
	e.env = proxy.Env()
	var res drillResult
	e.runInto(0, &res, "drill", "--queue", url, "--sample", "2", "--config", e.config)
	if !res.Queued || res.Enqueued != 2 || len(res.Restores) != 0 || proxy.Count("CreateVolume").Calls != 0 {
		t.Fatalf("drill --queue SQS: %+v, %d CreateVolume; want 2 jobs enqueued and nothing restored", res, proxy.Count("CreateVolume").Calls)
	}
	r := e.cli("work", "--queue", url, "--idle-exit", "2s", "--output", "json", "--config", e.config)
	var s map[string]int
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || r.code != 0 || s["processed"] != 2 || s["dead_lettered"] != 0 {
		t.Fatalf("work: exit %d, %v (%v)\n%s", r.code, s, err, tail(r.stderr))
	}
	if c, d := proxy.Count("CreateVolume").Calls, proxy.Count("DeleteVolume").Calls; c != 2 || d != 2 {
		t.Fatalf("%d CreateVolume, %d DeleteVolume; want 2 and 2", c, d)
	}
	if after := e.volumeIDs(ctx); !slices.Equal(after, before) {
		t.Fatalf("volumes %v, want %v", after, before)
	}
	n := 0
	for _, ev := range read(2) {
		if d, _ := ev["detail"].(map[string]any); ev["detail-type"] == "snapfleet.DrillResult" && d["drill"] == res.Drill && d["ok"] == true {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d DrillResult events of drill %s, want 2", n, res.Drill)
	}
}
