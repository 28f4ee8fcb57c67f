package report

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestSnapshotOf: the size is FullSnapshotSizeInBytes when AWS reports it, else the
// volume's size; the archive tier, snapfleet:consistency application and snapfleet:source
// (a copy) are read when present, and a snapshot without them is a crash-consistent original.
func TestSnapshotOf(t *testing.T) {
	t.Parallel()
	tags := func(kv ...string) []types.Tag {
		var out []types.Tag
		for i := 0; i < len(kv); i += 2 {
			out = append(out, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
		}
		return out
	}
	base := func() types.Snapshot {
		return types.Snapshot{SnapshotId: aws.String("snap-0abc"), VolumeId: aws.String("vol-0abc1234"), VolumeSize: aws.Int32(8),
			State: types.SnapshotStateCompleted, Tags: tags("snapfleet:policy", "daily")}
	}
	s := snapshotOf(base(), nil)
	if s.Bytes != 8<<30 || s.Archived || s.Copy || s.Consistency != Crash || s.Policy != "daily" || s.Volume != "vol-0abc1234" {
		t.Errorf("plain snapshot read as %+v", s)
	}
	full := base()
	full.FullSnapshotSizeInBytes = aws.Int64(123456789)
	full.StorageTier = types.StorageTierArchive
	full.Tags = tags("snapfleet:policy", "daily", "snapfleet:consistency", "application", "snapfleet:source", "snap-0def", "Team", "ops")
	s = snapshotOf(full, []string{"Team", "Env"})
	if s.Bytes != 123456789 || !s.Archived || !s.Copy || s.Consistency != Application || s.CostTags["Team"] != "ops" || len(s.CostTags) != 1 {
		t.Errorf("full snapshot read as %+v", s)
	}
}
