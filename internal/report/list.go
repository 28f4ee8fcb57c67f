package report

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/planner"
)

// liveStates are the instance states whose volumes the report looks at: all but terminated.
var liveStates = []string{"pending", "running", "shutting-down", "stopping", "stopped"}

// List reads one account-region: its instances, volumes and managed snapshots, with one
// paginated listing each. Any listing error fails the scope: a report from half a
// listing would call covered volumes missing.
// With sample, the standard-tier snapshots of a sample of volumes are kept for measure.
func List(ctx context.Context, client EC2, cfg *config.Config, account, region string, sample bool) (*Scope, error) {
	sc := NewScope(cfg, account, region)
	// The three listings go at once, each at its own bucket's pace; the snapshots wait
	// for the instances only when they pick the sample.
	var instErr, volErr, snapErr error
	listed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(listed)
		sc.Instances, instErr = planner.DescribeInstances(ctx, client, &ec2.DescribeInstancesInput{
			Filters:    []types.Filter{{Name: aws.String("instance-state-name"), Values: liveStates}},
			MaxResults: aws.Int32(1000),
		})
		if instErr == nil && sample {
			sc.chooseSample()
		}
	})
	wg.Go(func() { volErr = listVolumes(ctx, client, sc) })
	wg.Go(func() {
		if sample {
			if <-listed; instErr != nil {
				return
			}
		}
		filter := []types.Filter{{Name: aws.String("tag-key"), Values: []string{tag.Policy}}}
		snapErr = planner.DescribeSnapshots(ctx, client, filter, func(s types.Snapshot) {
			if aws.ToString(s.OwnerId) != account {
				return // a listing may return other owners' snapshots
			}
			sc.Add(snapshotOf(s, cfg.Report.CostTags))
		})
	})
	wg.Wait()
	switch {
	case instErr != nil:
		return nil, fmt.Errorf("listing instances in %s/%s: %w", account, region, instErr)
	case volErr != nil:
		return nil, fmt.Errorf("listing volumes in %s/%s: %w", account, region, volErr)
	case snapErr != nil:
		return nil, fmt.Errorf("listing snapshots in %s/%s: %w", account, region, snapErr)
	}
	return sc, nil
}

// listVolumes reads every volume's state and tags.
func listVolumes(ctx context.Context, client ec2.DescribeVolumesAPIClient, sc *Scope) error {
	pages := ec2.NewDescribeVolumesPaginator(client, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(500)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describing volumes: %w", err)
		}
		for _, v := range page.Volumes {
			vol := Volume{ID: aws.ToString(v.VolumeId), State: string(v.State)}
			if len(v.Tags) > 0 {
				vol.Tags = make(map[string]string, len(v.Tags))
				for _, t := range v.Tags {
					vol.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
				}
			}
			sc.Volumes[vol.ID] = vol
		}
	}
	return nil
}

// snapshotOf reads a listed snapshot: the planner's reading of its policy, volume, start
// and state, and the size, tier, consistency, copy source and cost tags.
func snapshotOf(s types.Snapshot, costTags []string) Snapshot {
	ps := planner.SnapshotFrom(s)
	out := Snapshot{ID: ps.ID, Policy: ps.Policy, Volume: ps.Volume, Start: ps.Start, State: ps.State,
		Archived: s.StorageTier == types.StorageTierArchive, Consistency: Crash}
	if n := aws.ToInt64(s.FullSnapshotSizeInBytes); n > 0 {
		out.Bytes = n
	} else {
		out.Bytes = int64(aws.ToInt32(s.VolumeSize)) << 30
	}
	for _, t := range s.Tags {
		k, v := aws.ToString(t.Key), aws.ToString(t.Value)
		switch {
		case k == tag.Consistency && strings.EqualFold(v, Application):
			out.Consistency = Application
		case k == tag.Source:
			out.Copy = true
		}
		for _, ck := range costTags {
			if k == ck {
				if out.CostTags == nil {
					out.CostTags = map[string]string{}
				}
				out.CostTags[k] = v
			}
		}
	}
	return out
}
