package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/snapfleet/snapfleet/internal/recovery"
	"github.com/snapfleet/snapfleet/internal/tag"
	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
)

// recoveryWorld is one instance (root and data volume) with managed snapshots of both
// devices at three times, tagged Role=solr as tags_from_instance would, and one snapshot
// made by hand: the recovery points the snapshots and restore tests look at.
type recoveryWorld struct {
	inst  testfleet.Instance
	times []time.Time
	// data and root are the snapshots of the data and root volume, oldest first.
	data, root []string
	handmade   string
}

func (e *e2e) recoveryWorld(ctx context.Context) recoveryWorld {
	e.t.Helper()
	w := recoveryWorld{inst: e.fleet.Instances(ctx, 1, 1, nil)[0]}
	real := time.Now().UTC()
	for i, age := range []time.Duration{3 * day, 2 * day, day} {
		at := real.Add(-age)
		w.times = append(w.times, at)
		for _, v := range []struct {
			vol, dev string
			ids      *[]string
		}{{w.inst.Data[0], testfleet.DataDevice, &w.data}, {w.inst.Root, testfleet.RootDevice, &w.root}} {
			tags := map[string]string{tag.Policy: "daily", tag.Volume: v.vol, tag.Instance: w.inst.ID, tag.Device: v.dev,
				"Role": "solr", "Team": "ops", tag.Job: "j" + v.dev}
			if i == 2 && v.dev == testfleet.DataDevice {
				tags[tag.Consistency] = "application"
			}
			*v.ids = append(*v.ids, e.snapshotAt(ctx, v.vol, at.Add(time.Duration(len(v.dev))*time.Second), tags))
		}
	}
	w.handmade = e.snapshotAt(ctx, w.inst.Data[0], real.Add(-time.Hour), map[string]string{"Role": "solr"})
	e.moto.ShiftClock(e.t, 0)
	return w
}

func (e *e2e) points(want int, args ...string) snapshotsResult {
	e.t.Helper()
	var r snapshotsResult
	e.runInto(want, &r, append(append([]string{"snapshots"}, args...), "--config", e.config)...)
	return r
}

func ids(ps []recovery.Point) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Snapshot)
	}
	return out
}

// TestSnapshotsList: snapshots lists the recovery points of a volume, of an instance (both
// devices) and of a tag selector, newest first, never a snapshot snapfleet did not make;
// --at equal to a point's time includes it, --at before the first lists none; the
// consistency tag shows (absent: crash); text output names each point.
func TestSnapshotsList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	w := e.recoveryWorld(ctx)
	rev := func(s []string) []string {
		out := make([]string, len(s))
		for i := range s {
			out[len(s)-1-i] = s[i]
		}
		return out
	}
	r := e.points(0, "--volume", w.inst.Data[0])
	if got, want := strings.Join(ids(r.Points), " "), strings.Join(rev(w.data), " "); got != want || r.Total != 3 {
		t.Fatalf("--volume: %s (total %d), want %s newest first", got, r.Total, want)
	}
	p := r.Points[0]
	if p.Consistency != "application" || r.Points[1].Consistency != "crash" || p.Policy != "daily" || p.State != "completed" ||
		p.Tier != "standard" || p.SizeGiB != 8 || p.Device != testfleet.DataDevice || p.Volume != w.inst.Data[0] {
		t.Fatalf("newest point %+v; next's consistency %q", p, r.Points[1].Consistency)
	}
	// --at exactly the middle point's time includes it; a nanosecond before does not.
	mid := r.Points[1].Time
	if got := ids(e.points(0, "--volume", w.inst.Data[0], "--at", mid.Format(time.RFC3339Nano)).Points); strings.Join(got, " ") != w.data[1]+" "+w.data[0] {
		t.Fatalf("--at %s: %v, want %s and %s", mid, got, w.data[1], w.data[0])
	}
	if got := ids(e.points(0, "--volume", w.inst.Data[0], "--at", mid.Add(-time.Nanosecond).Format(time.RFC3339Nano)).Points); len(got) != 1 || got[0] != w.data[0] {
		t.Fatalf("--at just before the middle one: %v, want %s", got, w.data[0])
	}
	if got := e.points(0, "--volume", w.inst.Data[0], "--at", w.times[0].Add(-time.Minute).Format(time.RFC3339)); got.Total != 0 {
		t.Fatalf("--at before the first: %v, want none", ids(got.Points))
	}
	if got := e.points(0, "--instance", w.inst.ID); got.Total != 6 || got.Points[0].Snapshot != w.data[2] && got.Points[0].Snapshot != w.root[2] {
		t.Fatalf("--instance: %v, want all 6 points of both devices, newest first", ids(got.Points))
	}
	got := e.points(0, "--tags", "Role=solr,Team=ops", "--device", testfleet.RootDevice)
	if strings.Join(ids(got.Points), " ") != strings.Join(rev(w.root), " ") {
		t.Fatalf("--tags Role=solr,Team=ops --device %s: %v, want %v", testfleet.RootDevice, ids(got.Points), rev(w.root))
	}
	if got := e.points(0, "--tags", "Role=solr"); got.Total != 6 {
		t.Fatalf("--tags Role=solr: %v, want the 6 managed points and not the hand-made %s", ids(got.Points), w.handmade)
	}
	if got := e.points(0, "--tags", "Role=web"); got.Total != 0 {
		t.Fatalf("--tags Role=web: %v, want none", ids(got.Points))
	}
	text := e.cli("snapshots", "--volume", w.inst.Data[0], "--config", e.config)
	if text.code != 0 || !strings.Contains(text.stdout, w.data[2]) || !strings.Contains(text.stdout, "application") || !strings.Contains(text.stdout, "3 recovery points") {
		t.Fatalf("text: exit %d\n%s\n%s", text.code, text.stdout, tail(text.stderr))
	}
	for _, bad := range [][]string{{"--volume", "vol-x"}, {"--volume", w.inst.Root, "--instance", w.inst.ID}, {"--at", "yesterday"}, {"--account", "1"}} {
		r := e.cli(append([]string{"snapshots", "--config", e.config}, bad...)...)
		if r.code != 2 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("snapshots %v: exit %d, stderr %q; want 2 and one line", bad, r.code, r.stderr)
		}
	}
}

// TestTagsFromInstanceRun: with tags_from_instance, run's snapshots (per volume and per
// instance) carry the chosen instance tags and no other, and snapshots --tags … --device
// finds the newest of that device by them once the instance is gone.
func TestTagsFromInstanceRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.setConfig(`policies:
  - name: vols
    select: {instance_tags: {Kind: vols}}
    retain: {max_age: 30d}
    tags_from_instance: [Role, Cluster]
  - name: insts
    select: {instance_tags: {Kind: insts}}
    retain: {max_age: 30d}
    consistency: instance
    tags_from_instance: [Role]
`)
	vols := e.fleet.Instances(ctx, 1, 1, map[string]string{"Kind": "vols", "Role": "solr", "Cluster": "b", "Other": "x"})[0]
	insts := e.fleet.Instances(ctx, 1, 1, map[string]string{"Kind": "insts", "Role": "db", "Cluster": "c"})[0]
	db := "file:" + filepath.Join(t.TempDir(), "jobs.db")
	if r := e.cli("run", "--queue", db, "--config", e.config, "--output", "json"); r.code != 0 {
		t.Fatalf("run: exit %d\n%s", r.code, tail(r.stderr))
	}
	want := map[string]map[string]string{}
	for _, v := range vols.Volumes() {
		want[v] = map[string]string{"Role": "solr", "Cluster": "b"}
	}
	for _, v := range insts.Volumes() {
		want[v] = map[string]string{"Role": "db"}
	}
	byVol := managedByVolume(e.snapshots(ctx))
	for v, tags := range want {
		if len(byVol[v]) != 1 {
			t.Fatalf("volume %s: %d snapshots, want 1", v, len(byVol[v]))
		}
		got := tagsOf(byVol[v][0])
		for _, k := range []string{"Role", "Cluster", "Other", "Kind"} {
			if got[k] != tags[k] {
				t.Errorf("snapshot of %s: tag %s = %q, want %q", v, k, got[k], tags[k])
			}
		}
	}
	if _, err := e.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{vols.ID}}); err != nil {
		t.Fatal(err)
	}
	r := e.points(0, "--tags", "Role=solr,Cluster=b", "--device", testfleet.DataDevice)
	if r.Total != 1 || r.Points[0].Volume != vols.Data[0] {
		t.Fatalf("--tags Role=solr,Cluster=b --device %s: %+v, want the one point of %s", testfleet.DataDevice, r.Points, vols.Data[0])
	}
}
