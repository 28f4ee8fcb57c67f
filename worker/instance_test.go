package worker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
)

const instancePolicy = `
policies:
  - name: crash
    consistency: instance
    select: {exclude_tags: {skip: "yes"}}
    retain: {max_age: 30d}
    tags: {Team: ops}
`

// instanceWithData runs an instance in moto with data volumes at /dev/sdf, /dev/sdg, ...;
// it returns the instance, its root volume and the data volumes.
func (e *motoEnv) instanceWithData(t *testing.T, data int) (id, root string, vols []string) {
	t.Helper()
	in := e.fleet(t).Instances(context.Background(), 1, data, nil)[0]
	return in.ID, in.Root, in.Data
}

func instanceJob(instance, policy string, period time.Time) job.Job {
	return job.Job{
		V: 1, Kind: job.KindCreateInstance,
		Key:     job.CreateKey(testAccount, testRegion, instance, policy, period),
		Account: testAccount, Region: testRegion, Policy: policy, Instance: instance,
		Run: "run-test", PlannedAt: plannedAt,
	}
}

// volumesOf returns the volumes of snaps, sorted.
func volumesOf(snaps []types.Snapshot) []string {
	var out []string
	for _, s := range snaps {
		out = append(out, aws.ToString(s.VolumeId))
	}
	slices.Sort(out)
	return out
}

// TestCreateInstance: an instance job delivered twice, and again later, makes one
// CreateSnapshots call: a snapshot of every volume of the instance, each carrying every
// tag of DESIGN.md §4 — the common ones written in the call, its volume, device and Name
// after it.
func TestCreateInstance(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, instancePolicy)
	inst, root, data := e.instanceWithData(t, 2)
	e.fleet(t).Tag(context.Background(), inst, map[string]string{"Name": "web-1"})
	clock := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	now := func() time.Time { return clock }
	j := instanceJob(inst, "crash", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	body := encode(t, j)

	q := newFakeQueue()
	q.add(0, body, body)
	w := e.newWorker(q, cfg, now)
	w.Concurrency = 2
	if st := runFor(t, w, 10*time.Second); st != (Stats{Processed: 2, Created: 1}) {
		t.Errorf("stats = %+v, want 2 processed and 1 created", st)
	}
	if st, _, _ := e.run(t, cfg, now, 10*time.Second, body); st != (Stats{Processed: 1}) {
		t.Errorf("redelivery stats = %+v, want 1 processed, nothing created", st)
	}
	if n, m := e.faults.count("CreateSnapshots"), e.faults.count("CreateSnapshot"); n != 1 || m != 0 {
		t.Errorf("CreateSnapshots called %d times and CreateSnapshot %d, want 1 and 0", n, m)
	}

	snaps := e.byJob(t, j.Key)
	want := append([]string{root}, data...)
	slices.Sort(want)
	if got := volumesOf(snaps); !slices.Equal(got, want) {
		t.Fatalf("snapshots of volumes %v carry the job key, want one of each of %v", got, want)
	}
	devices := map[string]string{root: "/dev/sda1", data[0]: "/dev/sdf", data[1]: "/dev/sdg"}
	for _, s := range snaps {
		vol := aws.ToString(s.VolumeId)
		diffTags(t, map[string]string{
			tag.Policy:     "crash",
			tag.Job:        j.Key,
			tag.Volume:     vol,
			tag.Instance:   inst,
			tag.Device:     devices[vol],
			tag.Expires:    "2026-12-22T01:02:03Z",
			tag.AutoBackup: "true",
			tag.Name:       "web-1 " + devices[vol] + " " + aws.ToTime(s.StartTime).UTC().Format(time.RFC3339),
			"Team":         "ops",
		}, tagMap(s.Tags))
	}
}

// TestCreateInstanceExclusions: exclude_boot leaves the root volume out and a data volume
// carrying an exclude tag is named in ExcludeDataVolumeIds. (moto honours
// ExcludeBootVolume but ignores ExcludeDataVolumeIds, so the request is checked for the
// latter, the snapshots for the former.) An instance carrying an exclude tag is skipped.
func TestCreateInstanceExclusions(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, instancePolicy+"    exclude_boot: true\n")
	inst, root, data := e.instanceWithData(t, 2)
	ctx := context.Background()
	e.fleet(t).Tag(ctx, data[1], map[string]string{"skip": "yes"})
	var spec *types.InstanceSpecification
	e.faults.setFail(func(op string, params any, _ int) error {
		if in, ok := params.(*ec2.CreateSnapshotsInput); ok {
			spec = in.InstanceSpecification
		}
		return nil
	})
	clock := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	j := instanceJob(inst, "crash", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	if st, _, _ := e.run(t, cfg, func() time.Time { return clock }, 10*time.Second, encode(t, j)); st != (Stats{Processed: 1, Created: 1}) {
		t.Fatalf("stats = %+v, want 1 created", st)
	}
	if spec == nil || !aws.ToBool(spec.ExcludeBootVolume) || !slices.Equal(spec.ExcludeDataVolumeIds, []string{data[1]}) {
		t.Errorf("CreateSnapshots InstanceSpecification = %+v, want the boot volume and %s excluded", spec, data[1])
	}
	if got := volumesOf(e.byJob(t, j.Key)); slices.Contains(got, root) || !slices.Contains(got, data[0]) {
		t.Errorf("snapshots of %v, want %s and not the root volume %s", got, data[0], root)
	}

	// The instance itself carries the exclude tag: skipped, nothing made.
	e.fleet(t).Tag(ctx, inst, map[string]string{"skip": "yes"})
	j2 := instanceJob(inst, "crash", time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	if st, _, _ := e.run(t, cfg, func() time.Time { return clock.Add(24 * time.Hour) }, 10*time.Second, encode(t, j2)); st != (Stats{Processed: 1, Skipped: 1}) {
		t.Errorf("excluded instance: stats = %+v, want 1 skipped", st)
	}
	if n := len(e.byJob(t, j2.Key)); n != 0 {
		t.Errorf("%d snapshots of an excluded instance", n)
	}
}

// TestCreateInstanceGone: the instance no longer exists: skipped (instance_gone), not
// dead-lettered.
func TestCreateInstanceGone(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, instancePolicy)
	j := instanceJob("i-0000000000000dead", "crash", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	st, q, _ := e.run(t, cfg, time.Now, 10*time.Second, encode(t, j))
	if st != (Stats{Processed: 1, Skipped: 1}) {
		t.Errorf("stats = %+v, want 1 skipped", st)
	}
	if len(q.dead) != 0 {
		t.Errorf("dead letters: %v", q.dead)
	}
}

// TestCreateInstanceTagsCompleted: tagging a snapshot after CreateSnapshots fails; the
// job is retried, the redelivery finds the snapshots and completes their tags without a
// second CreateSnapshots. The instance has no Name tag: the snapshots are named after
// its id.
func TestCreateInstanceTagsCompleted(t *testing.T) {
	t.Parallel()
	e := newMoto(t)
	cfg := policyConfig(t, instancePolicy)
	inst, _, _ := e.instanceWithData(t, 1)
	e.faults.setFail(func(op string, _ any, n int) error {
		if op == "CreateTags" && n == 1 {
			return apiError("InternalError")
		}
		return nil
	})
	clock := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	j := instanceJob(inst, "crash", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	q := newFakeQueue()
	q.add(0, encode(t, j))
	w := e.newWorker(q, cfg, func() time.Time { return clock })
	w.backoff.SnoozeMin = 0
	st := runFor(t, w, 20*time.Second)
	if st.Retried != 1 || st.Processed != 2 || st.DeadLettered != 0 {
		t.Errorf("stats = %+v, want one retry then success", st)
	}
	if n := e.faults.count("CreateSnapshots"); n != 1 {
		t.Errorf("CreateSnapshots called %d times, want 1", n)
	}
	snaps := e.byJob(t, j.Key)
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots carry the key, want 2", len(snaps))
	}
	for _, s := range snaps {
		tg := tagMap(s.Tags)
		if tg[tag.Volume] != aws.ToString(s.VolumeId) || tg[tag.Device] == "" {
			t.Errorf("snapshot %s of %s: tags %v, want its volume and device", aws.ToString(s.SnapshotId), aws.ToString(s.VolumeId), tg)
		}
		if want := inst + " " + tg[tag.Device] + " " + aws.ToTime(s.StartTime).UTC().Format(time.RFC3339); tg[tag.Name] != want {
			t.Errorf("snapshot %s: Name %q, want %q", aws.ToString(s.SnapshotId), tg[tag.Name], want)
		}
	}
}

// TestCreateInstanceRaceSettles: another worker's CreateSnapshots of the same job lands
// between this worker's look and its own. The set with the smaller set id stays whole —
// never a mix of the two, which would not be one point in time —, the other set goes
// whole, whoever made it, and the job is reported as created only when this worker's set
// stays. This worker's set id is 16 hex digits: "0" sorts before any, "g" after any.
func TestCreateInstanceRaceSettles(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, otherSet string
		othersStay     bool
	}{
		{"the other's set is kept", "0", true},
		{"this worker's set is kept", "g", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newMoto(t)
			cfg := policyConfig(t, instancePolicy)
			inst, _, _ := e.instanceWithData(t, 2)
			j := instanceJob(inst, "crash", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
			var others []string
			e.faults.setFail(func(op string, _ any, n int) error {
				if op != "CreateSnapshots" || n != 1 {
					return nil
				}
				out, err := e.setup.CreateSnapshots(context.Background(), &ec2.CreateSnapshotsInput{
					InstanceSpecification: &types.InstanceSpecification{InstanceId: &inst},
					Description:           aws.String(job.CreateDescription(j.Policy, j.Key, tt.otherSet)),
					TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{
						{Key: aws.String(tag.Policy), Value: aws.String("crash")}, {Key: aws.String(tag.Job), Value: aws.String(j.Key)}}}},
				})
				if err != nil {
					t.Errorf("the other worker's CreateSnapshots: %v", err)
					return nil
				}
				for _, s := range out.Snapshots {
					others = append(others, aws.ToString(s.SnapshotId))
				}
				return nil
			})
			clock := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
			st, _, _ := e.run(t, cfg, func() time.Time { return clock }, 10*time.Second, encode(t, j))
			want := Stats{Processed: 1, Created: 1}
			if tt.othersStay {
				want.Created = 0
			}
			if st != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
			var left []string
			for _, s := range e.byJob(t, j.Key) {
				left = append(left, aws.ToString(s.SnapshotId))
			}
			slices.Sort(others)
			if len(others) != 3 || len(left) != 3 {
				t.Fatalf("snapshots carrying the key: %v, the other worker's %v; want one set of 3", left, others)
			}
			for _, id := range left {
				if slices.Contains(others, id) != tt.othersStay {
					t.Errorf("snapshots carrying the key: %v, the other worker's set %v: want one whole set, the other's: %v", left, others, tt.othersStay)
				}
			}
			if n := e.faults.count("DeleteSnapshot"); n != 3 {
				t.Errorf("%d DeleteSnapshot calls, want 3 (one set)", n)
			}
		})
	}
}
