package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/faultproxy"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/queue"
)

// gfsConfig is a grandfather-father-son policy; adopt is added to it in one half of the test.
const gfsConfig = `
policies:
  - name: gfs
    select: {instance_tags: {Backup: gfs}}
    retain: {keep_daily: 7, keep_weekly: 4, keep_monthly: 3, keep_yearly: 2}
`

// gfsAnchor is the newest of the forty daily snapshots: a Tuesday, so the days before
// it cross an ISO week (2027-W01 starts Monday 2027-01-04), a year and three months.
var gfsAnchor = time.Date(2027, 1, 5, 12, 0, 0, 0, time.UTC)

// gfsKept are the days before gfsAnchor whose snapshot the policy keeps, worked out by
// hand: daily 0–6 (Jan 5 … Dec 30); weekly the newest of 2027-W01 (0), 2026-W53 (2, Jan 3),
// W52 (9, Dec 27), W51 (16, Dec 20); monthly Jan (0), Dec (5, Dec 31), Nov (36, Nov 30);
// yearly 2027 (0), 2026 (5).
var gfsKept = []int{0, 1, 2, 3, 4, 5, 6, 9, 16, 36}

// setConfig writes the config the next commands of e use.
func (e *e2e) setConfig(yaml string) {
	e.t.Helper()
	path := filepath.Join(e.t.TempDir(), "snapfleet.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.config = path
}

// snapshotAt makes a snapshot of vol whose StartTime is at (moto's clock is moved there).
func (e *e2e) snapshotAt(ctx context.Context, vol string, at time.Time, tags map[string]string) string {
	e.t.Helper()
	return e.fleet.SnapshotAt(ctx, vol, at, tags)
}

// decisionsOf returns a dry run's decisions by snapshot id, as "action reason".
func decisionsOf(t *testing.T, plan map[string]any) map[string]string {
	t.Helper()
	ds, _ := plan["decisions"].([]any)
	out := map[string]string{}
	for _, d := range ds {
		m := d.(map[string]any)
		if id, _ := m["snapshot"].(string); id != "" {
			out[id] = fmt.Sprint(m["action"], " ", m["reason"])
		}
	}
	return out
}

// TestRetentionGFS is the retention issue end to end, through the binary and moto: forty
// daily snapshots of one volume under a GFS policy, one snapshot used by an AMI, one
// legacy AutoBackup snapshot. The dry run lists exactly the expected set (JSON stable
// from one run to the next); the plan would delete 31 of 42 managed snapshots, so the
// circuit breaker stops it (exit 1) until --force; the workers delete exactly the
// expired, unprotected ones; the legacy snapshot goes only when the config adopts it; a
// forged delete of a kept snapshot is refused.
func TestRetentionGFS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.setConfig(gfsConfig)
	v := e.fleet.Volume(ctx)
	managed := map[string]string{tag.Policy: "gfs", tag.Volume: v, tag.AutoBackup: "true"}
	days := make([]string, 40)
	for i := 39; i >= 0; i-- {
		days[i] = e.snapshotAt(ctx, v, gfsAnchor.Add(-time.Duration(i)*day), managed)
	}
	legacy := e.snapshotAt(ctx, v, time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC), map[string]string{tag.AutoBackup: "true"})

	// moto's RegisterImage makes the AMI's snapshot itself, whatever the mappings name; it
	// is used by the AMI all the same (DeleteSnapshot answers InvalidSnapshot.InUse). Made
	// on Dec 10 and tagged as one of the volume's, it is one the policy expires.
	e.moto.ShiftClock(t, time.Until(time.Date(2026, 12, 10, 18, 0, 0, 0, time.UTC)))
	img, err := e.ec2.RegisterImage(ctx, &ec2.RegisterImageInput{Name: aws.String("golden-image"), RootDeviceName: aws.String("/dev/sda1"),
		BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"), Ebs: &types.EbsBlockDevice{SnapshotId: aws.String(days[26])}}}})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := e.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{aws.ToString(img.ImageId)}})
	if err != nil || len(desc.Images) != 1 || len(desc.Images[0].BlockDeviceMappings) == 0 {
		t.Fatalf("describing the AMI: %v", err)
	}
	amiSnap := aws.ToString(desc.Images[0].BlockDeviceMappings[0].Ebs.SnapshotId)
	e.tag(ctx, amiSnap, tag.Policy, "gfs")
	e.tag(ctx, amiSnap, tag.Volume, v)
	now := gfsAnchor.Add(10 * time.Minute).Format(time.RFC3339)

	want := map[string]string{amiSnap: "protected in_use"}
	kept := map[string]bool{}
	for _, i := range gfsKept {
		kept[days[i]] = true
	}
	for i, id := range days {
		want[id] = "held circuit_breaker"
		if kept[id] {
			want[id] = "keep " + map[bool]string{true: "newest", false: "keep_daily"}[i == 0]
		}
	}
	for _, i := range []int{9, 16} {
		want[days[i]] = "keep keep_weekly"
	}
	want[days[36]] = "keep keep_monthly"

	// Without adopt: the legacy snapshot is not snapfleet's. 30 of 41 would go: held.
	dry := e.jsonCLI(1, "plan", "--dry-run", "--now", now)
	if got := decisionsOf(t, dry); !reflect.DeepEqual(got, want) {
		t.Fatalf("dry run without adopt:\n got %v\nwant %v", got, want)
	}
	if num(t, dry, "snapshots_seen") != 41 || num(t, dry, "held") != 30 || num(t, dry, "protected") != 1 || num(t, dry, "kept") != 10 || num(t, dry, "delete_jobs") != 0 {
		t.Fatalf("dry run summary: %v", dry)
	}
	scopes := dry["scopes"].([]any)
	if b, _ := scopes[0].(map[string]any)["breaker"].(map[string]any); len(scopes) != 1 || b["reason"] != "max_delete_fraction" {
		t.Fatalf("scopes %v, want one with the breaker tripped", scopes)
	}
	// Stable between runs: the same decisions, in the same order, byte for byte.
	again := e.jsonCLI(1, "plan", "--dry-run", "--now", now)
	a, _ := json.Marshal(dry["decisions"])
	b, _ := json.Marshal(again["decisions"])
	if string(a) != string(b) {
		t.Fatalf("two dry runs differ:\n%s\n%s", a, b)
	}
	for _, d := range dry["decisions"].([]any) {
		m := d.(map[string]any)
		if m["detail"] == nil && m["action"] != "held" {
			t.Errorf("decision without detail: %v", m)
		}
	}
	table := e.cli("plan", "--dry-run", "--now", now, "--config", e.config, "--output", "table")
	for _, s := range []string{"keep_weekly", "newest of its ISO week, within keep_weekly 4", "in_use", "used by " + aws.ToString(img.ImageId),
		"BREAKER", "max_delete_fraction", mototest.Account + " " + mototest.Region} {
		if !strings.Contains(table.stdout, s) {
			t.Errorf("table output lacks %q:\n%s", s, table.stdout)
		}
	}
	if table.code != 1 {
		t.Errorf("table dry run: exit %d, want 1", table.code)
	}

	// With adopt: the legacy snapshot is the policy's; it expires like its neighbours.
	e.setConfig(gfsConfig + "    adopt: {tags: {AutoBackup: \"true\"}}\n")
	dry = e.jsonCLI(1, "plan", "--dry-run", "--now", now)
	want[legacy] = "held circuit_breaker"
	if got := decisionsOf(t, dry); !reflect.DeepEqual(got, want) {
		t.Fatalf("dry run with adopt:\n got %v\nwant %v", got, want)
	}

	// The real plan: held, exit 1, nothing enqueued; --force lets the 31 deletes through.
	db := "file:" + filepath.Join(t.TempDir(), "q.db")
	p := e.jsonCLI(1, "plan", "--queue", db, "--now", now)
	if num(t, p, "enqueued") != 0 || num(t, p, "held") != 31 || !strings.Contains(fmt.Sprint(p["failures"]), "circuit breaker: would delete 31 of 42") {
		t.Fatalf("breaker plan: %v", p)
	}
	p = e.jsonCLI(0, "plan", "--queue", db, "--now", now, "--force")
	if num(t, p, "enqueued") != 31 || num(t, p, "delete_jobs") != 31 || num(t, p, "errors") != 0 {
		t.Fatalf("forced plan: %v", p)
	}

	// A forged delete of a snapshot the policy keeps (the weekly keeper of W52) joins them.
	q, err := queue.Open(ctx, db, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := job.Encode(job.Job{V: 1, Kind: job.KindDelete, Key: job.DeleteKey(mototest.Account, mototest.Region, days[9]),
		Account: mototest.Account, Region: mototest.Region, Policy: "gfs", Snapshot: days[9], Volume: v, Run: "forged", PlannedAt: gfsAnchor})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, []queue.Outgoing{{Body: forged}}); err != nil {
		t.Fatal(err)
	}
	q.Close()

	w := e.jsonCLI(0, "work", "--queue", db, "--now", now, "--allow-clock-skew", "--idle-exit", "2s", "--visibility", "5s", "--concurrency", "4")
	if num(t, w, "deleted") != 31 || num(t, w, "dead_lettered") != 1 {
		t.Fatalf("workers: %v, want 31 deleted and the forged delete dead-lettered", w)
	}
	var left []string
	for _, s := range managedByVolume(e.snapshots(ctx))[v] {
		left = append(left, aws.ToString(s.SnapshotId))
	}
	wantLeft := []string{amiSnap}
	for _, i := range gfsKept {
		wantLeft = append(wantLeft, days[i])
	}
	sort.Strings(left)
	sort.Strings(wantLeft)
	if !slices.Equal(left, wantLeft) {
		t.Fatalf("snapshots left of %s:\n got %v\nwant %v (the GFS set and the AMI's)", v, left, wantLeft)
	}
	if _, ok := e.snapshots(ctx)[legacy]; ok {
		t.Errorf("adopted legacy snapshot %s still exists", legacy)
	}

	q, err = queue.Open(ctx, db, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	dlq, err := q.DLQ(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := dlq.Receive(ctx, 10, time.Second)
	if err != nil || len(msgs) != 1 || msgs[0].Reason != "refused_retention" || !strings.Contains(string(msgs[0].Body), days[9]) {
		t.Fatalf("dead letters %+v (%v), want the forged delete refused_retention", msgs, err)
	}

	// Planned again: nothing more to delete, nothing held; the AMI's snapshot stays protected.
	if p := e.jsonCLI(0, "plan", "--dry-run", "--now", now); num(t, p, "held") != 0 || num(t, p, "delete_jobs") != 0 || num(t, p, "protected") != 1 {
		t.Fatalf("plan after pruning: %v", p)
	}
}

// queued drains the embedded queue at db and returns its jobs by kind (snapshot.delete
// apart from the creates).
func (e *e2e) queued(ctx context.Context, db string) (creates, deletes []job.Job) {
	e.t.Helper()
	q, err := queue.Open(ctx, db, queue.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	for {
		msgs, err := q.Receive(ctx, 10, 100*time.Millisecond)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(msgs) == 0 {
			return creates, deletes
		}
		for _, m := range msgs {
			j, err := job.Decode(m.Body)
			if err != nil {
				e.t.Fatalf("queued message %s: %v", m.Body, err)
			}
			if j.Kind == job.KindDelete {
				deletes = append(deletes, j)
			} else {
				creates = append(creates, j)
			}
		}
	}
}

// snapshotsOf returns the ids of the delete jobs, sorted.
func snapshotsOf(js []job.Job) []string {
	var ids []string
	for _, j := range js {
		ids = append(ids, j.Snapshot)
	}
	sort.Strings(ids)
	return ids
}

// TestRetentionBreakerAt80 is the breaker case end to end: a plan that would
// delete 80% of its account-region's managed snapshots (8 of 10 under keep_daily 2)
// exits 1, enqueues the creates and no delete, and names the breaker in its JSON; the
// same plan with --force enqueues the 8 deletes.
func TestRetentionBreakerAt80(t *testing.T) {
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
	managed := map[string]string{tag.Policy: "last2", tag.Volume: data}
	var expired []string
	for i := 1; i <= 10; i++ {
		id := e.snapshotAt(ctx, data, e.start.Add(-time.Duration(i)*day), managed)
		if i > 2 {
			expired = append(expired, id)
		}
	}
	sort.Strings(expired)
	now := e.at(0)

	held := "file:" + filepath.Join(t.TempDir(), "held.db")
	p := e.jsonCLI(1, "plan", "--queue", held, "--now", now)
	if num(t, p, "snapshots_seen") != 10 || num(t, p, "held") != 8 || num(t, p, "kept") != 2 || num(t, p, "delete_jobs") != 0 ||
		num(t, p, "snapshot_jobs") != 2 || num(t, p, "enqueued") != 2 {
		t.Fatalf("plan deleting 80%%: %v, want 8 of 10 held and only the 2 creates enqueued", p)
	}
	scopes, _ := p["scopes"].([]any)
	if len(scopes) != 1 {
		t.Fatalf("scopes %v, want one", scopes)
	}
	b, _ := scopes[0].(map[string]any)["breaker"].(map[string]any)
	if b["reason"] != "max_delete_fraction" || b["deletes"] != 8.0 || b["managed"] != 10.0 || b["max_delete_fraction"] != 0.5 {
		t.Fatalf("scope breaker %v, want max_delete_fraction with 8 of 10", b)
	}
	if f := fmt.Sprint(p["failures"]); !strings.Contains(f, "circuit breaker: would delete 8 of 10 managed snapshots") || !strings.Contains(f, "--force overrides") {
		t.Fatalf("failures %s, want the breaker named", f)
	}
	creates, deletes := e.queued(ctx, held)
	if len(creates) != 2 || len(deletes) != 0 {
		t.Fatalf("held plan queued %d creates and deletes %v, want 2 creates and no delete", len(creates), snapshotsOf(deletes))
	}

	forced := "file:" + filepath.Join(t.TempDir(), "forced.db")
	p = e.jsonCLI(0, "plan", "--queue", forced, "--now", now, "--force")
	if num(t, p, "held") != 0 || num(t, p, "delete_jobs") != 8 || num(t, p, "enqueued") != 10 || num(t, p, "errors") != 0 {
		t.Fatalf("forced plan: %v, want the 8 deletes and 2 creates enqueued", p)
	}
	if _, tripped := p["scopes"].([]any)[0].(map[string]any)["breaker"]; tripped {
		t.Fatalf("forced plan still names a breaker: %v", p["scopes"])
	}
	_, deletes = e.queued(ctx, forced)
	for _, j := range deletes {
		if j.Account != mototest.Account || j.Region != mototest.Region || j.Volume != data {
			t.Errorf("delete job %+v, want %s/%s volume %s", j, mototest.Account, mototest.Region, data)
		}
	}
	if got := snapshotsOf(deletes); !slices.Equal(got, expired) {
		t.Fatalf("forced plan queued deletes of %v, want the 8 expired %v", got, expired)
	}
}

// TestForceNeverOverridesIncompleteListing: two regions, each with an instance whose
// volume has 3 snapshots under keep_last 1 (2 of 3 expire, over the default fraction);
// DescribeSnapshots fails in eu-west-1 (a fault proxy in front of moto). `plan --force`
// lets us-east-1's 2 deletes through, but in eu-west-1 it plans no delete: the scope's
// breaker says incomplete_listing, the listing is a failure (exit 1), nothing is listed
// as held, and its create is still enqueued.
func TestForceNeverOverridesIncompleteListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	e.setConfig(`
regions: [us-east-1, eu-west-1]
policies:
  - name: last1
    retain: {keep_last: 1}
`)
	const east, west = mototest.Region, "eu-west-1"
	roots := map[string]string{}
	var expired []string
	for _, region := range []string{east, west} {
		f := e.fleet.In(mototest.Account, region)
		root := f.Instances(ctx, 1, 0, nil)[0].Root
		roots[region] = root
		for i := 1; i <= 3; i++ {
			id := f.SnapshotAt(ctx, root, e.start.Add(-time.Duration(i)*day), map[string]string{tag.Policy: "last1", tag.Volume: root})
			if region == east && i > 1 {
				expired = append(expired, id)
			}
		}
	}
	sort.Strings(expired)
	now := e.at(0)
	proxy := faultproxy.Start(t, e.moto.Endpoint)
	proxy.Add(faultproxy.Rule{Action: "DescribeSnapshots", Region: west, Fault: faultproxy.Error})
	e.env = proxy.Env()

	db := "file:" + filepath.Join(t.TempDir(), "q.db")
	p := e.jsonCLI(1, "plan", "--queue", db, "--now", now, "--force")
	if proxy.Count("DescribeSnapshots").Injected == 0 {
		t.Fatal("no DescribeSnapshots call failed: the plan did not go through the proxy")
	}
	if p["force"] != true || num(t, p, "delete_jobs") != 2 || num(t, p, "snapshot_jobs") != 2 || num(t, p, "enqueued") != 4 ||
		num(t, p, "held") != 0 || num(t, p, "errors") != 1 {
		t.Fatalf("forced plan: %v, want us-east-1's 2 deletes and both creates enqueued, 1 error", p)
	}
	if f := fmt.Sprint(p["failures"]); !strings.Contains(f, "listing snapshots in "+mototest.Account+"/"+west+" (no deletes planned there)") || !strings.Contains(f, "InternalError") {
		t.Fatalf("failures %s, want eu-west-1's snapshot listing", f)
	}
	scopes := map[string]map[string]any{}
	for _, sc := range p["scopes"].([]any) {
		m := sc.(map[string]any)
		scopes[m["region"].(string)] = m
	}
	if b, _ := scopes[west]["breaker"].(map[string]any); b["reason"] != "incomplete_listing" || scopes[west]["deletes"] != 0.0 || scopes[west]["creates"] != 1.0 {
		t.Fatalf("eu-west-1 scope %v, want breaker incomplete_listing, no delete and its create", scopes[west])
	}
	if _, tripped := scopes[east]["breaker"]; tripped || scopes[east]["deletes"] != 2.0 {
		t.Fatalf("us-east-1 scope %v, want its 2 deletes forced through", scopes[east])
	}
	creates, deletes := e.queued(ctx, db)
	var created []string
	for _, j := range creates {
		created = append(created, j.Region+" "+j.Volume)
	}
	sort.Strings(created)
	if want := []string{west + " " + roots[west], east + " " + roots[east]}; !slices.Equal(created, want) {
		t.Fatalf("creates queued for %v, want %v", created, want)
	}
	for _, j := range deletes {
		if j.Region != east {
			t.Errorf("delete %s queued in %s despite its incomplete listing", j.Snapshot, j.Region)
		}
	}
	if got := snapshotsOf(deletes); !slices.Equal(got, expired) {
		t.Fatalf("deletes queued for %v, want us-east-1's expired %v", got, expired)
	}

	// The dry run lists nothing of eu-west-1's snapshots: no held, no keep (README, Safety 8).
	dry := e.jsonCLI(1, "plan", "--dry-run", "--now", now, "--force")
	for _, d := range dry["decisions"].([]any) {
		if m := d.(map[string]any); m["region"] == west && m["snapshot"] != nil {
			t.Errorf("dry run lists a decision on a snapshot of the unlisted scope: %v", m)
		}
	}
	if num(t, dry, "held") != 0 || num(t, dry, "delete_jobs") != 2 {
		t.Fatalf("dry run: %v", dry)
	}
	table := e.cli("plan", "--dry-run", "--now", now, "--force", "--config", e.config, "--output", "table")
	if !strings.Contains(table.stdout, mototest.Account+"  "+west) || !strings.Contains(table.stdout, "incomplete_listing") || table.code != 1 {
		t.Errorf("table dry run (exit %d) does not name eu-west-1's breaker:\n%s", table.code, table.stdout)
	}
}

// TestGoneVolumeNewestKeptWithoutOrphansOptIn is issue 12.1 end to end: under
// `retain: {max_age: 30d, min_keep: 0}` and no orphans key, the only snapshot of a deleted
// volume, 40 days old, is kept by `run` (the newest of a volume, live or gone) and a forged
// delete of it without a volume field is refused; with `orphans: {min_keep: 0}`, the
// explicit opt-in, `run` deletes it. The real clock is used: no --now.
func TestGoneVolumeNewestKeptWithoutOrphansOptIn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	const policy = "policies:\n  - {name: p, every: 24h, retain: {max_age: 30d, min_keep: 0}%s}\n"
	e.setConfig(fmt.Sprintf(policy, ""))
	v := e.fleet.Volume(ctx)
	only := e.snapshotAt(ctx, v, time.Now().Add(-40*day), map[string]string{tag.Policy: "p", tag.Volume: v})
	e.moto.ShiftClock(t, 0)
	if _, err := e.ec2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(v)}); err != nil {
		t.Fatal(err)
	}
	db := "file:" + filepath.Join(t.TempDir(), "q.db")

	r := e.jsonCLI(0, "run", "--queue", db, "--force") // past the breaker: only retention may keep it
	if num(t, r, "plan.delete_jobs") != 0 || num(t, r, "work.deleted") != 0 {
		t.Fatalf("run without orphans: %v, want the only snapshot of the gone volume kept", r)
	}
	if _, ok := e.snapshots(ctx)[only]; !ok {
		t.Fatalf("snapshot %s, the newest of gone volume %s, was deleted without the orphans opt-in", only, v)
	}

	q, err := queue.Open(ctx, db, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := job.Encode(job.Job{V: 1, Kind: job.KindDelete, Key: job.DeleteKey(mototest.Account, mototest.Region, only),
		Account: mototest.Account, Region: mototest.Region, Policy: "p", Snapshot: only, Run: "forged", PlannedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, []queue.Outgoing{{Body: forged}}); err != nil {
		t.Fatal(err)
	}
	q.Close()
	w := e.jsonCLI(0, "work", "--queue", db, "--idle-exit", "2s", "--visibility", "5s")
	if num(t, w, "deleted") != 0 || num(t, w, "dead_lettered") != 1 {
		t.Fatalf("forged delete without volume: %v, want it refused and dead-lettered", w)
	}
	if _, ok := e.snapshots(ctx)[only]; !ok {
		t.Fatalf("a forged delete without volume deleted %s, the newest of gone volume %s", only, v)
	}
	if q, err = queue.Open(ctx, db, queue.Options{}); err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	dlq, err := q.DLQ(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := dlq.Receive(ctx, 10, time.Second)
	if err != nil || len(msgs) != 1 || msgs[0].Reason != "refused_retention" || !strings.Contains(msgs[0].LastError, "newest") {
		t.Fatalf("dead letters %+v (%v), want the forged delete refused_retention as the newest of its volume", msgs, err)
	}

	// The explicit opt-in lets the newest of a gone volume expire.
	e.setConfig(fmt.Sprintf(policy, ", orphans: {min_keep: 0}"))
	optin := "file:" + filepath.Join(t.TempDir(), "optin.db")
	r = e.jsonCLI(0, "run", "--queue", optin, "--force")
	if num(t, r, "plan.delete_jobs") != 1 || num(t, r, "work.deleted") != 1 {
		t.Fatalf("run with orphans.min_keep 0: %v, want the gone volume's snapshot deleted", r)
	}
	if _, ok := e.snapshots(ctx)[only]; ok {
		t.Fatalf("snapshot %s still exists under orphans.min_keep 0", only)
	}
}
