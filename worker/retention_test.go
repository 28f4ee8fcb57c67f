package worker

import (
	"context"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/tag"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// lockedEC2 is moto with snapshot locks, which moto lacks: the named snapshots are locked.
// As EC2, without SnapshotIds it lists every locked snapshot, one per page.
type lockedEC2 struct {
	EC2
	locked map[string]types.LockState
	calls  *atomic.Int32 // DescribeLockedSnapshots calls, when not nil
}

func (l lockedEC2) DescribeLockedSnapshots(_ context.Context, in *ec2.DescribeLockedSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeLockedSnapshotsOutput, error) {
	if l.calls != nil {
		l.calls.Add(1)
	}
	out := &ec2.DescribeLockedSnapshotsOutput{}
	if len(in.SnapshotIds) > 0 {
		for _, id := range in.SnapshotIds {
			if st, ok := l.locked[id]; ok {
				out.Snapshots = append(out.Snapshots, types.LockedSnapshotsInfo{SnapshotId: aws.String(id), LockState: st})
			}
		}
		return out, nil
	}
	all := slices.Sorted(maps.Keys(l.locked))
	i := 0
	if in.NextToken != nil {
		i = slices.Index(all, *in.NextToken) + 1
	}
	if i < len(all) {
		out.Snapshots = []types.LockedSnapshotsInfo{{SnapshotId: aws.String(all[i]), LockState: l.locked[all[i]]}}
		if i+1 < len(all) {
			out.NextToken = aws.String(all[i])
		}
	}
	return out, nil
}

// runWith runs a worker on api until the queue drains or limit passes.
func (e *motoEnv) runWith(t *testing.T, api EC2, cfg *config.Config, limit time.Duration, bodies ...[]byte) (Stats, *fakeQueue, []string) {
	t.Helper()
	q := newFakeQueue()
	ids := q.add(0, bodies...)
	w := e.newWorker(q, cfg, time.Now)
	w.EC2 = func(string, string) EC2 { return api }
	return runFor(t, w, limit), q, ids
}

// TestDeleteGFS: the worker re-computes GFS retention with its own config: a forged
// delete of a snapshot keep_weekly keeps is refused, one no rule keeps goes.
func TestDeleteGFS(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	vol := e.volume(t)
	cfg := policyConfig(t, "policies:\n  - name: gfs\n    retain: {keep_daily: 3, keep_weekly: 3}\n")
	// Daily snapshots 0..20 days old: keep_daily keeps days 0-2, keep_weekly the newest of
	// each of the last 3 ISO weeks that have snapshots.
	ids := map[int]string{}
	for age := 0; age <= 20; age++ {
		ids[age] = e.managed(t, vol, "gfs", time.Duration(age)*24*time.Hour+time.Hour)
	}
	// The oldest snapshot of the week of the snapshot 7 days old is kept only if it is
	// the newest of its week; find a weekly keeper and a non-keeper by the engine's rule.
	now := time.Now()
	weekOf := func(age int) int {
		_, w := now.Add(-time.Duration(age)*24*time.Hour - time.Hour).UTC().ISOWeek()
		return w
	}
	weekly, expired := -1, -1
	seenWeeks := map[int]bool{weekOf(0): true}
	for age := 1; age <= 20; age++ {
		w := weekOf(age)
		if !seenWeeks[w] {
			seenWeeks[w] = true
			if age > 2 && len(seenWeeks) <= 3 && weekly < 0 {
				weekly = age
			}
			continue
		}
		if age > 2 && expired < 0 && len(seenWeeks) <= 3 {
			expired = age
		}
	}
	if weekly < 0 || expired < 0 {
		t.Fatalf("fixture: no weekly keeper (%d) or expired snapshot (%d)", weekly, expired)
	}
	st, q, qids := e.run(t, cfg, time.Now, 10*time.Second,
		encode(t, deleteJob(ids[weekly], "gfs")), encode(t, deleteJob(ids[expired], "gfs")))
	if want := (Stats{Processed: 2, Deleted: 1, DeadLettered: 1}); st != want {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}
	if got := q.deadReasons()[qids[0]]; got != reason.RefusedRetention {
		t.Errorf("forged delete of the weekly keeper: reason %q, want %s", got, reason.RefusedRetention)
	}
	if !e.exists(t, ids[weekly]) || e.exists(t, ids[expired]) {
		t.Errorf("weekly keeper exists %v (want true), expired exists %v (want false)", e.exists(t, ids[weekly]), e.exists(t, ids[expired]))
	}
}

// TestDeleteOrphans: with orphans.min_keep 0, the newest snapshot of a volume goes only
// when DescribeVolumes says the volume is gone; without the opt-in it never goes.
func TestDeleteOrphans(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	optIn := policyConfig(t, "policies:\n  - name: default\n    retain: {max_age: 30d}\n    orphans: {min_keep: 0}\n")

	live := e.volume(t)
	liveNewest := e.managed(t, live, "default", 40*24*time.Hour)
	goneVol := e.volume(t)
	goneNewest := e.managed(t, goneVol, "default", 40*24*time.Hour)
	keptByDefault := e.volume(t)
	keptNewest := e.managed(t, keptByDefault, "default", 40*24*time.Hour)
	for _, v := range []string{goneVol, keptByDefault} {
		if _, err := e.setup.DeleteVolume(context.Background(), &ec2.DeleteVolumeInput{VolumeId: aws.String(v)}); err != nil {
			t.Fatal(err)
		}
	}

	st, q, ids := e.run(t, optIn, time.Now, 10*time.Second,
		encode(t, deleteJob(liveNewest, "default")), encode(t, deleteJob(goneNewest, "default")))
	if want := (Stats{Processed: 2, Deleted: 1, DeadLettered: 1}); st != want {
		t.Fatalf("stats = %+v, want %+v", st, want)
	}
	if got := q.deadReasons()[ids[0]]; got != reason.RefusedRetention {
		t.Errorf("newest of a live volume: reason %q, want %s", got, reason.RefusedRetention)
	}
	if !e.exists(t, liveNewest) || e.exists(t, goneNewest) {
		t.Errorf("live newest exists %v (want true), orphan exists %v (want false)", e.exists(t, liveNewest), e.exists(t, goneNewest))
	}

	st, q, ids = e.run(t, config.Default(), time.Now, 10*time.Second, encode(t, deleteJob(keptNewest, "default")))
	if st.DeadLettered != 1 || q.deadReasons()[ids[0]] != reason.RefusedRetention || !e.exists(t, keptNewest) {
		t.Errorf("orphan without the opt-in: stats %+v, reasons %v", st, q.deadReasons())
	}
	// Asked only when the orphans' floor would delete what the live rules keep: for the
	// live volume and the gone one under the opt-in, never under the default.
	if n := e.faults.count("DescribeVolumes"); n != 2 {
		t.Errorf("DescribeVolumes called %d times, want 2", n)
	}
}

// TestDeleteAdopted: a legacy snapshot (no snapfleet:policy) is deleted only when the
// worker's own config adopts it for the job's policy.
func TestDeleteAdopted(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	vol := e.volume(t)
	legacy := e.snap(t, vol, 60*24*time.Hour, map[string]string{tag.AutoBackup: "true"})
	e.managed(t, vol, "default", 0)
	lonely := e.volume(t)
	onlyLegacy := e.snap(t, lonely, 60*24*time.Hour, map[string]string{tag.AutoBackup: "true"})

	plain := policyConfig(t, "policies:\n  - name: default\n    retain: {max_age: 30d}\n")
	st, q, ids := e.run(t, plain, time.Now, 10*time.Second, encode(t, deleteJob(legacy, "default")))
	if st.DeadLettered != 1 || q.deadReasons()[ids[0]] != reason.RefusedUnmanaged || !e.exists(t, legacy) {
		t.Fatalf("legacy snapshot without adopt: stats %+v, reasons %v", st, q.deadReasons())
	}

	adopt := policyConfig(t, "policies:\n  - name: default\n    retain: {max_age: 30d}\n    adopt: {tags: {AutoBackup: \"true\"}}\n")
	st, q, ids = e.run(t, adopt, time.Now, 10*time.Second,
		encode(t, deleteJob(legacy, "default")), encode(t, deleteJob(onlyLegacy, "default")))
	if want := (Stats{Processed: 2, Deleted: 1, DeadLettered: 1}); st != want {
		t.Fatalf("with adopt: stats = %+v, want %+v", st, want)
	}
	if e.exists(t, legacy) || !e.exists(t, onlyLegacy) {
		t.Errorf("adopted expired exists %v (want false); adopted newest exists %v (want true)", e.exists(t, legacy), e.exists(t, onlyLegacy))
	}
	if got := q.deadReasons()[ids[1]]; got != reason.RefusedRetention {
		t.Errorf("the newest adopted snapshot of a volume: reason %q, want %s", got, reason.RefusedRetention)
	}
}

// TestDeleteClassifier: shared and locked snapshots are skipped with their reason; a lock
// check that fails is retried, never a delete; an endpoint without the lock API has no locks.
func TestDeleteClassifier(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	vol := e.volume(t)
	e.managed(t, vol, "default", 0)
	shared := e.managed(t, vol, "default", 40*24*time.Hour)
	locked := e.managed(t, vol, "default", 41*24*time.Hour)
	plain := e.managed(t, vol, "default", 42*24*time.Hour)
	e.fleet(t).Share(context.Background(), shared, "111122223333")
	api := lockedEC2{EC2: e.worker, locked: map[string]types.LockState{locked: types.LockStateCompliance}}
	st, q, _ := e.runWith(t, api, config.Default(), 10*time.Second,
		encode(t, deleteJob(shared, "default")), encode(t, deleteJob(locked, "default")))
	if want := (Stats{Processed: 2, Skipped: 2}); st != want || !e.exists(t, shared) || !e.exists(t, locked) {
		t.Fatalf("stats = %+v, want %+v; reasons %v", st, want, q.deadReasons())
	}
	if n := e.faults.count("DeleteSnapshot"); n != 0 {
		t.Errorf("DeleteSnapshot called %d times", n)
	}

	e.faults.setFail(func(op string, _ any, _ int) error {
		if op == "DescribeLockedSnapshots" {
			return apiError("InternalError")
		}
		return nil
	})
	st, _, _ = e.run(t, config.Default(), time.Now, 2*time.Second, encode(t, deleteJob(plain, "default")))
	if st.Deleted != 0 || st.Retried == 0 || !e.exists(t, plain) {
		t.Fatalf("failing lock check: stats %+v, exists %v", st, e.exists(t, plain))
	}
	e.faults.setFail(func(op string, _ any, _ int) error {
		if op == "DescribeLockedSnapshots" {
			return apiError("InvalidAction")
		}
		return nil
	})
	st, _, _ = e.run(t, config.Default(), time.Now, 10*time.Second, encode(t, deleteJob(plain, "default")))
	if st.Deleted != 1 || e.exists(t, plain) {
		t.Fatalf("endpoint without the lock API: stats %+v", st)
	}
}

// TestLockListing: the worker lists an account-region's locked snapshots (every page)
// once per lock TTL, not once per delete: four deletes with three locked snapshots among
// the account's cost one listing of three pages; the locked one is skipped and the others
// deleted. With the TTL over before each job, every delete lists again and still finds
// the lock.
func TestLockListing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		ttl       time.Duration
		listCalls int32
	}{
		{"within the TTL", time.Hour, 3},
		{"TTL over each time", time.Nanosecond, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newMoto(t)
			vol := e.volume(t)
			e.managed(t, vol, "default", 0)
			var plain []string
			for i := range 3 {
				plain = append(plain, e.managed(t, vol, "default", time.Duration(40+i)*24*time.Hour))
			}
			locked := e.managed(t, vol, "default", 45*24*time.Hour)
			var calls atomic.Int32
			api := lockedEC2{EC2: e.worker, calls: &calls, locked: map[string]types.LockState{
				locked: types.LockStateGovernance, "snap-00000000000000001": types.LockStateCompliance, "snap-fffffffffffffffff": types.LockStateCompliance}}
			q := newFakeQueue()
			var bodies [][]byte
			for _, id := range append(plain, locked) {
				bodies = append(bodies, encode(t, deleteJob(id, "default")))
			}
			q.add(0, bodies...)
			w := e.newWorker(q, config.Default(), time.Now)
			w.EC2 = func(string, string) EC2 { return api }
			w.Concurrency = 1
			w.lockTTL = tc.ttl
			st := runFor(t, w, 10*time.Second)
			if want := (Stats{Processed: 4, Deleted: 3, Skipped: 1}); st != want {
				t.Errorf("stats %+v, want %+v (reasons %v)", st, want, q.deadReasons())
			}
			if !e.exists(t, locked) {
				t.Errorf("locked snapshot %s deleted", locked)
			}
			if got := calls.Load(); got != tc.listCalls {
				t.Errorf("%d DescribeLockedSnapshots calls, want %d", got, tc.listCalls)
			}
		})
	}
}
