package report

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"golang.org/x/time/rate"
)

// EBS is what --measure-changes calls: the EBS direct API's two listings, with the SDK's
// signatures so its paginators work.
type EBS interface {
	ebs.ListChangedBlocksAPIClient
	ebs.ListSnapshotBlocksAPIClient
}

// MeasureSample is how many volumes of each account-region --measure-changes measures:
// the first by id among the selected ones.
const MeasureSample = 10

// Measure paces the EBS direct API listings with a bucket of their own per
// account-region, apart from EC2's: MeasureBurst calls, then MeasureRate a second, well
// under the per-account quotas of the EBS direct API.
const (
	MeasureBurst = 10
	MeasureRate  = 5
)

// Measured is what --measure-changes found: the storage of a sample of standard-tier
// snapshots as AWS bills it (the blocks each one changed since the volume's previous
// snapshot), beside the full sizes the estimate counts.
type Measured struct {
	Volumes   int `json:"volumes"`
	Snapshots int `json:"snapshots"`
	// FullGB is the sample's size as the estimate counts it; ChangedGB as AWS bills it.
	FullGB    float64 `json:"full_gb"`
	ChangedGB float64 `json:"changed_gb"`
	// Ratio is ChangedGB / FullGB; StandardUSD the standard tier's cost at that ratio
	// (extrapolated from the sample), beside the upper bound's.
	Ratio       float64   `json:"ratio"`
	StandardUSD float64   `json:"standard_usd_extrapolated"`
	Note        string    `json:"note"`
	Errors      []Failure `json:"errors"`
}

// sampled is one snapshot of a sampled volume.
type sampled struct {
	id    string
	start time.Time
	bytes int64
}

// chooseSample marks the first MeasureSample attached volumes (by id) of the scope to be
// measured: Add keeps their standard-tier snapshots.
func (sc *Scope) chooseSample() {
	var ids []string
	for ii := range sc.Instances {
		for _, a := range sc.Instances[ii].Volumes {
			ids = append(ids, a.Volume)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	sc.sample = map[string][]sampled{}
	for _, id := range ids[:min(len(ids), MeasureSample)] {
		sc.sample[id] = nil
	}
}

// measure lists the changed blocks of each sampled volume's snapshots, oldest first: all
// the blocks of the first, and the blocks changed since the previous one of the others.
func (sc *Scope) measure(ctx context.Context, client EBS) (*Measured, error) {
	m := &Measured{Errors: []Failure{}}
	lim := rate.NewLimiter(MeasureRate, MeasureBurst)
	for _, vol := range sortedKeys(sc.sample) {
		snaps := sc.sample[vol]
		if len(snaps) == 0 {
			continue
		}
		slices.SortFunc(snaps, func(a, b sampled) int { return cmp.Compare(a.start.UnixNano(), b.start.UnixNano()) })
		m.Volumes++
		for i, s := range snaps {
			prev := ""
			if i > 0 {
				prev = snaps[i-1].id
			}
			n, err := changedBytes(ctx, client, lim, prev, s.id)
			if err != nil {
				return nil, fmt.Errorf("measuring the changed blocks of %s in %s/%s: %w", s.id, sc.Account, sc.Region, err)
			}
			m.Snapshots++
			m.FullGB += float64(s.bytes) / (1 << 30)
			m.ChangedGB += float64(n) / (1 << 30)
		}
	}
	return m, nil
}

// changedBytes is the size of the blocks of second that differ from first (all its
// blocks when first is empty).
func changedBytes(ctx context.Context, client EBS, lim *rate.Limiter, first, second string) (int64, error) {
	var total int64
	if first == "" {
		pages := ebs.NewListSnapshotBlocksPaginator(client, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(second)})
		for pages.HasMorePages() {
			if err := lim.Wait(ctx); err != nil {
				return 0, err
			}
			page, err := pages.NextPage(ctx)
			if err != nil {
				return 0, fmt.Errorf("listing the blocks of %s: %w", second, err)
			}
			total += int64(len(page.Blocks)) * int64(aws.ToInt32(page.BlockSize))
		}
		return total, nil
	}
	pages := ebs.NewListChangedBlocksPaginator(client, &ebs.ListChangedBlocksInput{FirstSnapshotId: aws.String(first), SecondSnapshotId: aws.String(second)})
	for pages.HasMorePages() {
		if err := lim.Wait(ctx); err != nil {
			return 0, err
		}
		page, err := pages.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("listing the blocks changed from %s to %s: %w", first, second, err)
		}
		for _, b := range page.ChangedBlocks {
			if b.SecondBlockToken != nil { // written in second; a block only in first costs second nothing
				total += int64(aws.ToInt32(page.BlockSize))
			}
		}
	}
	return total, nil
}

// MeasuredNote says which figure is which.
const MeasuredNote = "measured with the EBS direct API on a sample: changed_gb is what AWS bills the sampled standard-tier snapshots (blocks changed since each volume's previous snapshot), full_gb what the upper bound counts for them; standard_usd_extrapolated applies their ratio to the whole standard tier"

// addMeasured sums the scopes' measurements into the cost report.
func addMeasured(cr *CostReport, ms []*Measured, errs []Failure) {
	m := &Measured{Note: MeasuredNote, Errors: append([]Failure{}, errs...)}
	for _, x := range ms {
		m.Volumes += x.Volumes
		m.Snapshots += x.Snapshots
		m.FullGB += x.FullGB
		m.ChangedGB += x.ChangedGB
	}
	if m.FullGB > 0 {
		m.Ratio = m.ChangedGB / m.FullGB
	}
	m.StandardUSD = cr.Total.StandardGB * m.Ratio * cr.StandardPrice
	cr.Measured = m
}
