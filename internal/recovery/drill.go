package recovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// DrillAPI is what a drill needs of EC2: a restore, and the deletion of its own volumes.
type DrillAPI interface {
	API
	Lister
	DeleteVolume(ctx context.Context, in *ec2.DeleteVolumeInput, optFns ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error)
	DescribeAvailabilityZones(ctx context.Context, in *ec2.DescribeAvailabilityZonesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeAvailabilityZonesOutput, error)
}

// Record is the result of one drill restore: a line of the journal's "drill" stream and
// the detail of a snapfleet.DrillResult event.
type Record struct {
	Drill    string    `json:"drill"`
	At       time.Time `json:"at"`
	Account  string    `json:"account"`
	Region   string    `json:"region"`
	Policy   string    `json:"policy"`
	Snapshot string    `json:"snapshot"`
	Volume   string    `json:"volume,omitempty"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	Seconds  float64   `json:"seconds"`
}

// DrillStream is the journal stream of drill records.
const DrillStream = "drill"

// Sample picks n of the completed managed points of one account-region, seeded (the
// same seed and points give the same sample): first one of each policy in name order
// while n allows, then the others at random.
func Sample(points []Point, n int, seed uint64, account, region string) []Point {
	var pool []Point
	for _, p := range points {
		if p.Completed() && p.Policy != "" && p.Source == "" {
			pool = append(pool, p)
		}
	}
	h := fnv.New64a()
	h.Write([]byte(account + "/" + region))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	var out, rest []Point
	taken := map[string]bool{}
	for _, p := range pool {
		if !taken[p.Policy] && len(out) < n {
			taken[p.Policy] = true
			out = append(out, p)
		} else {
			rest = append(rest, p)
		}
	}
	for _, p := range rest {
		if len(out) == n {
			break
		}
		out = append(out, p)
	}
	return out
}

// Drill restores p into a throw-away gp3 volume in zone az, tagged
// snapfleet:drill=drillID, waits until it is available, and deletes it; the record says
// how it went. Each call makes its own volume and deletes it (a redelivered job restores
// again); a crash in between leaves a tagged volume that Cleanup takes. An error is
// returned, besides the record, only for what a retry may fix: a throttled CreateVolume,
// a volume that could not be deleted (ErrNotDrillVolume: one that must not be).
func Drill(ctx context.Context, api DrillAPI, p Point, drillID, az string, now time.Time, interval, timeout time.Duration) (Record, error) {
	rec := Record{Drill: drillID, At: now.UTC(), Account: p.Account, Region: p.Region, Policy: p.Policy, Snapshot: p.Snapshot}
	plan, err := Prepare(ctx, api, Request{Point: p, AZ: az, Type: string(types.VolumeTypeGp3), Tags: map[string]string{tag.Drill: drillID}})
	if err != nil {
		rec.Error = err.Error()
		return rec, nil
	}
	start := time.Now()
	vol, err := Create(ctx, api, plan)
	if err != nil {
		if class, _ := cloud.Classify(err); class == cloud.Throttled {
			return rec, err
		}
		rec.Error = err.Error()
		return rec, nil
	}
	rec.Volume = vol
	wctx, cancel := context.WithTimeout(ctx, timeout)
	v, werr := Wait(wctx, api, vol, interval, Available, nil)
	cancel()
	rec.Seconds = time.Since(start).Seconds()
	if werr != nil {
		rec.Error = werr.Error()
		// Read again right before the delete: the wait did not end on a read.
		return rec, DeleteDrillVolume(ctx, api, vol, drillID)
	}
	rec.OK = true
	// The wait's last read, just now, is the read right before the delete.
	return rec, deleteRead(ctx, api, v, drillID)
}

// FirstZone is the first available zone of the region: where drills restore.
func FirstZone(ctx context.Context, api DrillAPI) (string, error) {
	return firstZone(ctx, api)
}

// firstZone is the first available zone of the region, for a drill of a point whose
// source volume is gone.
func firstZone(ctx context.Context, api DrillAPI) (string, error) {
	out, err := api.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{
		Filters: []types.Filter{{Name: aws.String("state"), Values: []string{"available"}}}})
	if err != nil {
		return "", fmt.Errorf("listing availability zones: %w", err)
	}
	var zones []string
	for _, z := range out.AvailabilityZones {
		zones = append(zones, aws.ToString(z.ZoneName))
	}
	if len(zones) == 0 {
		return "", errors.New("no available zone")
	}
	return slices.Min(zones), nil
}

func volumeTags(v types.Volume) map[string]string {
	m := map[string]string{}
	for _, t := range v.Tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// ErrNotDrillVolume: a volume about to be deleted does not carry the drill tag expected.
var ErrNotDrillVolume = errors.New("not a drill volume")

// DeleteDrillVolume deletes volume id only if, read right before, it carries
// snapfleet:drill with value drillID (any value when drillID is ""). A volume already gone
// is a success.
func DeleteDrillVolume(ctx context.Context, api DrillAPI, id, drillID string) error {
	out, err := api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("volume-id"), Values: []string{id}}}})
	if err != nil {
		return fmt.Errorf("re-reading volume %s before deleting it: %w", id, err)
	}
	for _, v := range out.Volumes {
		if aws.ToString(v.VolumeId) == id {
			return deleteRead(ctx, api, v, drillID)
		}
	}
	return nil
}

// deleteRead deletes volume v, just read, if it carries snapfleet:drill=drillID (any
// value when drillID is ""). A throttled DeleteVolume is retried a few times here: a
// retry of the whole drill would restore again.
func deleteRead(ctx context.Context, api DrillAPI, v types.Volume, drillID string) error {
	id := aws.ToString(v.VolumeId)
	got, ok := volumeTags(v)[tag.Drill]
	if !ok || drillID != "" && got != drillID {
		return fmt.Errorf("deleting volume %s: %w (snapfleet:drill %q, want %q)", id, ErrNotDrillVolume, got, drillID)
	}
	wait := 500 * time.Millisecond
	for try := 0; ; try++ {
		_, err := api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)})
		class, _ := cloud.Classify(err)
		switch {
		case err == nil, class == cloud.NotFound:
			return nil
		case class != cloud.Throttled || try == 4:
			return fmt.Errorf("deleting drill volume %s: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deleting drill volume %s: %w", id, ctx.Err())
		case <-time.After(wait):
			wait *= 2
		}
	}
}

// Cleanup deletes the volumes crashed drills left: those carrying snapfleet:drill, created
// before olderThan, available or in error (never one attached: a drill never attaches, so
// someone else did). It returns the ids deleted.
func Cleanup(ctx context.Context, api DrillAPI, olderThan time.Time) ([]string, error) {
	pages := ec2.NewDescribeVolumesPaginator(api, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(500),
		Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{tag.Drill}}}})
	var gone []string
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return gone, fmt.Errorf("listing drill volumes: %w", err)
		}
		for _, v := range page.Volumes {
			id := aws.ToString(v.VolumeId)
			if _, ok := volumeTags(v)[tag.Drill]; !ok || !aws.ToTime(v.CreateTime).Before(olderThan) ||
				(v.State != types.VolumeStateAvailable && v.State != types.VolumeStateError) {
				continue
			}
			if err := DeleteDrillVolume(ctx, api, id, volumeTags(v)[tag.Drill]); err != nil {
				return gone, err
			}
			gone = append(gone, id)
		}
	}
	return gone, nil
}

// PolicyResult is a drill's figures for one policy.
type PolicyResult struct {
	Policy    string    `json:"policy"`
	LastDrill time.Time `json:"last_drill"`
	Tried     int       `json:"tried"`
	Succeeded int       `json:"succeeded"`
	P50       float64   `json:"p50_seconds"`
	P99       float64   `json:"p99_seconds"`
}

// Summarize gives per policy (in name order): the last drill time, restores tried and
// succeeded, and the p50 and p99 time-to-available of the successful ones.
func Summarize(recs []Record) []PolicyResult {
	by := map[string]*PolicyResult{}
	secs := map[string][]float64{}
	for _, r := range recs {
		pr := by[r.Policy]
		if pr == nil {
			pr = &PolicyResult{Policy: r.Policy}
			by[r.Policy] = pr
		}
		pr.Tried++
		if r.At.After(pr.LastDrill) {
			pr.LastDrill = r.At
		}
		if r.OK {
			pr.Succeeded++
			secs[r.Policy] = append(secs[r.Policy], r.Seconds)
		}
	}
	out := make([]PolicyResult, 0, len(by))
	for _, name := range slices.Sorted(maps.Keys(by)) {
		pr := *by[name]
		pr.P50, pr.P99 = quantile(secs[name], 0.5), quantile(secs[name], 0.99)
		out = append(out, pr)
	}
	return out
}

// quantile is the nearest-rank q-quantile of xs (0 for none).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.SortFunc(s, cmp.Compare)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}
