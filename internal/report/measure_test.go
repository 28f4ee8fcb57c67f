package report

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/snapfleet/snapfleet/planner"
)

var _ EBS = (*ebs.Client)(nil)

// fakeEBS serves the blocks of snapshots (index → content), 2 blocks a page.
type fakeEBS struct {
	blocks map[string]map[int32]string
	calls  []string
}

const blockSize = 512 << 10

func (f *fakeEBS) ListSnapshotBlocks(_ context.Context, in *ebs.ListSnapshotBlocksInput, _ ...func(*ebs.Options)) (*ebs.ListSnapshotBlocksOutput, error) {
	f.calls = append(f.calls, "all "+aws.ToString(in.SnapshotId)+" "+aws.ToString(in.NextToken))
	var out []types.Block
	for i := int32(0); i < 64; i++ {
		if _, ok := f.blocks[aws.ToString(in.SnapshotId)][i]; ok {
			out = append(out, types.Block{BlockIndex: aws.Int32(i), BlockToken: aws.String("t")})
		}
	}
	page, next := pageOf(out, in.NextToken)
	return &ebs.ListSnapshotBlocksOutput{Blocks: page, BlockSize: aws.Int32(blockSize), NextToken: next}, nil
}

func (f *fakeEBS) ListChangedBlocks(_ context.Context, in *ebs.ListChangedBlocksInput, _ ...func(*ebs.Options)) (*ebs.ListChangedBlocksOutput, error) {
	first, second := f.blocks[aws.ToString(in.FirstSnapshotId)], f.blocks[aws.ToString(in.SecondSnapshotId)]
	f.calls = append(f.calls, "changed "+aws.ToString(in.FirstSnapshotId)+" "+aws.ToString(in.SecondSnapshotId)+" "+aws.ToString(in.NextToken))
	var out []types.ChangedBlock
	for i := int32(0); i < 64; i++ {
		a, inA := first[i]
		b, inB := second[i]
		switch {
		case inA && inB && a != b:
			out = append(out, types.ChangedBlock{BlockIndex: aws.Int32(i), FirstBlockToken: aws.String("a"), SecondBlockToken: aws.String("b")})
		case inB && !inA:
			out = append(out, types.ChangedBlock{BlockIndex: aws.Int32(i), SecondBlockToken: aws.String("b")})
		case inA && !inB:
			out = append(out, types.ChangedBlock{BlockIndex: aws.Int32(i), FirstBlockToken: aws.String("a")})
		}
	}
	page, next := pageOf(out, in.NextToken)
	return &ebs.ListChangedBlocksOutput{ChangedBlocks: page, BlockSize: aws.Int32(blockSize), NextToken: next}, nil
}

func pageOf[T any](all []T, token *string) ([]T, *string) {
	start := 0
	if token != nil {
		start = int(aws.ToString(token)[0] - '0')
	}
	end := min(start+2, len(all))
	if end < len(all) {
		return all[start:end], aws.String(string(rune('0' + end)))
	}
	return all[start:end], nil
}

// TestMeasure: the first snapshot of a sampled volume counts all its blocks, the next
// ones the blocks written since the previous (a block dropped costs nothing), across
// pages; copies and archived snapshots are not sampled; the ratio extrapolates the
// standard tier's cost.
func TestMeasure(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "")
	sc := NewScope(cfg, "111111111111", "us-east-1")
	sc.Instances = []planner.Instance{{ID: "i-1", State: "running", Tags: map[string]string{"Backup": "true"},
		Volumes: []planner.Attachment{{Volume: "vol-a", Device: "/dev/sdf"}}}}
	sc.chooseSample()
	gib := int64(1 << 30)
	for _, s := range []Snapshot{
		{ID: "snap-2", Policy: "daily", Volume: "vol-a", Start: now.Add(-time.Hour), State: "completed", Bytes: gib},
		{ID: "snap-1", Policy: "daily", Volume: "vol-a", Start: now.Add(-25 * time.Hour), State: "completed", Bytes: gib},
		{ID: "snap-c", Policy: "daily", Volume: "vol-a", Start: now, State: "completed", Bytes: gib, Copy: true},
		{ID: "snap-z", Policy: "daily", Volume: "vol-a", Start: now.Add(-99 * time.Hour), State: "completed", Bytes: gib, Archived: true},
	} {
		sc.Add(s)
	}
	f := &fakeEBS{blocks: map[string]map[int32]string{
		"snap-1": {0: "x", 1: "x", 2: "x", 3: "x", 4: "x"},
		"snap-2": {0: "x", 1: "y", 2: "y", 3: "x", 5: "n"}, // 1, 2 changed, 5 new, 4 dropped
	}}
	m, err := sc.measure(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if m.Volumes != 1 || m.Snapshots != 2 || m.FullGB != 2 {
		t.Errorf("measured %+v, want 2 snapshots of 1 volume, 2 GB counted", m)
	}
	if want := float64(5+3) * blockSize / (1 << 30); math.Abs(m.ChangedGB-want) > 1e-12 {
		t.Errorf("changed %v GB, want %v (5 blocks, then 3)", m.ChangedGB, want)
	}
	if len(f.calls) != 5 || f.calls[0] != "all snap-1 " || f.calls[3] != "changed snap-1 snap-2 " {
		t.Errorf("calls %q: want snap-1's blocks in 3 pages, then the changes to snap-2 in 2", f.calls)
	}
	cr := CostReport{Total: Cost{StandardGB: 100}, StandardPrice: 0.05}
	addMeasured(&cr, []*Measured{m}, nil)
	if want := 100 * (m.ChangedGB / 2) * 0.05; math.Abs(cr.Measured.StandardUSD-want) > 1e-12 || cr.Measured.Note != MeasuredNote {
		t.Errorf("extrapolated %+v, want $%v", cr.Measured, want)
	}
}
