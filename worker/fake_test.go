package worker

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/tag"
)

// fakeEC2 is the package's one EC2 fake, for what moto does not do: it ignores every
// filter and OwnerIds (as an emulator or a call without OwnerIds may), pages its listings
// and fails one page, or answers lookups by job tag. A read by id returns those snapshots.
// Only the snapshot calls are served; the rest of EC2 is nil and would panic.
type fakeEC2 struct {
	EC2
	// pages are the listing's pages: the token of page i is "page-i". snaps is one page.
	pages    [][]types.Snapshot
	snaps    []types.Snapshot
	failPage int    // the listing fails on that page (0: never)
	hide     string // a snapshot left out of filtered listings
	// byValue answers each filter value with a snapshot of its own, "snap-" + the value,
	// carrying it as its job tag.
	byValue bool

	mu      sync.Mutex
	listed  int   // listing pages served or failed
	values  []int // filter values, per call
	creates int
	deletes int
}

func (f *fakeEC2) all() [][]types.Snapshot {
	if f.pages == nil {
		return [][]types.Snapshot{f.snaps}
	}
	return f.pages
}

func (f *fakeEC2) DescribeSnapshots(_ context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &ec2.DescribeSnapshotsOutput{}
	hidden := func(s types.Snapshot) bool { return len(in.Filters) > 0 && aws.ToString(s.SnapshotId) == f.hide }
	if len(in.SnapshotIds) > 0 {
		for _, s := range slices.Concat(f.all()...) {
			if slices.Contains(in.SnapshotIds, aws.ToString(s.SnapshotId)) && !hidden(s) {
				out.Snapshots = append(out.Snapshots, s)
			}
		}
		return out, nil
	}
	if f.byValue {
		for _, fl := range in.Filters {
			f.values = append(f.values, len(fl.Values))
			for _, v := range fl.Values {
				out.Snapshots = append(out.Snapshots, types.Snapshot{SnapshotId: aws.String("snap-" + v), OwnerId: aws.String(testAccount),
					Tags: []types.Tag{{Key: aws.String(tag.Job), Value: aws.String(v)}}})
			}
		}
		return out, nil
	}
	f.listed++
	pages, i := f.all(), 0
	if in.NextToken != nil {
		i = int(aws.ToString(in.NextToken)[len("page-")] - '0')
	}
	if f.failPage > 0 && i == f.failPage {
		return nil, errors.New("connection reset in the middle of the listing")
	}
	for _, s := range pages[i] {
		if !hidden(s) {
			out.Snapshots = append(out.Snapshots, s)
		}
	}
	if i+1 < len(pages) {
		out.NextToken = aws.String("page-" + string(rune('0'+i+1)))
	}
	return out, nil
}

func (f *fakeEC2) CreateSnapshot(context.Context, *ec2.CreateSnapshotInput, ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates++
	return &ec2.CreateSnapshotOutput{SnapshotId: aws.String("snap-0000000000000c0de")}, nil
}

func (f *fakeEC2) DeleteSnapshot(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	return &ec2.DeleteSnapshotOutput{}, nil
}

// The delete's extra checks are answered as AWS does for a volume that exists and a
// snapshot that is neither shared nor locked.
func (f *fakeEC2) DescribeVolumes(_ context.Context, in *ec2.DescribeVolumesInput, _ ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	var out []types.Volume
	for _, id := range in.VolumeIds {
		out = append(out, types.Volume{VolumeId: aws.String(id)})
	}
	return &ec2.DescribeVolumesOutput{Volumes: out}, nil
}

func (f *fakeEC2) DescribeSnapshotAttribute(_ context.Context, in *ec2.DescribeSnapshotAttributeInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotAttributeOutput, error) {
	return &ec2.DescribeSnapshotAttributeOutput{SnapshotId: in.SnapshotId}, nil
}

func (f *fakeEC2) DescribeLockedSnapshots(context.Context, *ec2.DescribeLockedSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeLockedSnapshotsOutput, error) {
	return &ec2.DescribeLockedSnapshotsOutput{}, nil
}
