package planner

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// inventory lists what the decisions of one account-region need. A failed listing is
// recorded and leaves its part out, so that Decide fails closed: no instances, no creates;
// no complete snapshot listing, no deletes.
func (p *Planner) inventory(ctx context.Context, client EC2, sc *scopeRun) Inventory {
	account, region, fail := sc.account, sc.region, sc.fail
	inv := Inventory{Account: account, Region: region}

	// The listings go at once, each at its own bucket's pace: the instances, the snapshots
	// and the volumes (their exclude tags decide creates, their existence tells orphans).
	keys := excludeKeys(p.Config)
	var (
		instances        []Instance
		instErr, snapErr error
		snaps            []Snapshot
		vols             map[string]bool
		tags             map[string]map[string]string
		volErr           error
		g                sync.WaitGroup
	)
	g.Go(func() { instances, instErr = listInstances(ctx, client, p.Config) })
	g.Go(func() { snaps, snapErr = listSnapshots(ctx, client, p.Config) })
	g.Go(func() { vols, tags, volErr = listVolumes(ctx, client, keys) })
	g.Wait()
	if instErr != nil {
		fail(fmt.Errorf("listing instances in %s/%s: %w", account, region, instErr))
	}
	if snapErr != nil {
		fail(fmt.Errorf("listing snapshots in %s/%s (no deletes planned there): %w", account, region, snapErr))
	} else {
		inv.Snapshots, inv.SnapshotsComplete = snaps, true
	}
	if volErr == nil {
		volErr = recheckVolumes(ctx, client, keys, inv.Snapshots, vols, tags)
	}
	switch {
	case (instErr != nil || len(keys) == 0) && len(inv.Snapshots) == 0:
		// Nothing needs them.
	case volErr != nil:
		// Exclusions cannot be told: no creates rather than snapshots of excluded
		// volumes. Orphans cannot be told: the live volumes' (stricter) rules apply.
		fail(fmt.Errorf("listing volumes in %s/%s: %w", account, region, volErr))
		instances = nil
	default:
		inv.Volumes, inv.VolumeTags = vols, tags
	}
	if instErr == nil {
		inv.Instances = instances
	}
	return inv
}

// listInstances lists the instances in the states of any policy, filtering by tag on the
// server when there is a single policy (with several, Decide filters).
func listInstances(ctx context.Context, client EC2, cfg *config.Config) ([]Instance, error) {
	states := map[string]bool{}
	var stateList []string
	for _, p := range cfg.Policies {
		for _, s := range p.Select.InstanceStates {
			if !states[s] {
				states[s] = true
				stateList = append(stateList, s)
			}
		}
	}
	sort.Strings(stateList)
	in := &ec2.DescribeInstancesInput{
		Filters:    []types.Filter{{Name: aws.String("instance-state-name"), Values: stateList}},
		MaxResults: aws.Int32(1000),
	}
	if len(cfg.Policies) == 1 {
		in.Filters = append(in.Filters, tagFilters(cfg.Policies[0].Select.InstanceTags)...)
	}
	return describeInstances(ctx, client, in)
}

// tagFilters are the filters "tag:K = V" of tags, in key order.
func tagFilters(tags map[string]string) []types.Filter {
	var fs []types.Filter
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		fs = append(fs, types.Filter{Name: aws.String("tag:" + k), Values: []string{tags[k]}})
	}
	return fs
}

// instanceOf reads what the planner needs of an instance: its id, state, tags, root
// device and EBS volumes.
func instanceOf(i types.Instance) Instance {
	inst := Instance{ID: aws.ToString(i.InstanceId), Tags: tagMap(i.Tags), Root: aws.ToString(i.RootDeviceName)}
	if i.State != nil {
		inst.State = string(i.State.Name)
	}
	for _, m := range i.BlockDeviceMappings {
		if m.Ebs != nil && aws.ToString(m.Ebs.VolumeId) != "" {
			inst.Volumes = append(inst.Volumes, Attachment{Volume: aws.ToString(m.Ebs.VolumeId), Device: aws.ToString(m.DeviceName)})
		}
	}
	return inst
}

// excludeKeys returns the tag keys of every policy's exclude_tags, sorted.
func excludeKeys(cfg *config.Config) []string {
	seen := map[string]bool{}
	var keys []string
	for _, p := range cfg.Policies {
		for k := range p.Select.ExcludeTags {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// listVolumes lists every volume of the account-region: which exist (for orphans), and
// the tags of those that carry any of keys (for exclusions).
func listVolumes(ctx context.Context, client EC2, keys []string) (map[string]bool, map[string]map[string]string, error) {
	exists := map[string]bool{}
	tags := map[string]map[string]string{}
	if err := volumePages(ctx, client, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(500)}, keys, exists, tags); err != nil {
		return nil, nil, err
	}
	return exists, tags, nil
}

// volumePages adds the volumes of every page of in to exists, and the tags of those
// carrying one of keys to tags.
func volumePages(ctx context.Context, client EC2, in *ec2.DescribeVolumesInput, keys []string, exists map[string]bool, tags map[string]map[string]string) error {
	pages := ec2.NewDescribeVolumesPaginator(client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describing volumes: %w", err)
		}
		for _, v := range page.Volumes {
			id := aws.ToString(v.VolumeId)
			exists[id] = true
			for _, t := range v.Tags {
				if slices.Contains(keys, aws.ToString(t.Key)) {
					tags[id] = tagMap(v.Tags)
					break
				}
			}
		}
	}
	return nil
}

// recheckVolumes asks again for the volumes that snaps name but the volume listing did
// not see, and adds those that exist to vols (and their tags to tags): listed alongside
// the snapshots, the volumes' listing may have passed before a volume was made whose
// snapshot the snapshot listing then saw, and that snapshot would look orphaned. Asked
// once the snapshots are listed, a volume missing now is gone. It costs a call per
// recheckBatch volumes that look gone.
func recheckVolumes(ctx context.Context, client EC2, keys []string, snaps []Snapshot, vols map[string]bool, tags map[string]map[string]string) error {
	var missing []string
	seen := map[string]bool{}
	for _, s := range snaps {
		if s.Volume != "" && !vols[s.Volume] && !seen[s.Volume] {
			seen[s.Volume] = true
			missing = append(missing, s.Volume)
		}
	}
	slices.Sort(missing)
	for ids := range slices.Chunk(missing, recheckBatch) {
		in := &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("volume-id"), Values: ids}}, MaxResults: aws.Int32(500)}
		if err := volumePages(ctx, client, in, keys, vols, tags); err != nil {
			return err
		}
	}
	return nil
}

// recheckBatch is how many volume ids one DescribeVolumes filter asks for (EC2 takes up
// to 200 values in a filter).
const recheckBatch = 200

// listSnapshots lists the snapshots carrying snapfleet:policy that the caller owns, and
// the legacy snapshots the config adopts (every adopt tag, no snapfleet:policy). The owner
// is checked again by Decide: a listing may return other owners' snapshots.
func listSnapshots(ctx context.Context, client EC2, cfg *config.Config) ([]Snapshot, error) {
	var out snapshotList
	err := describeSnapshots(ctx, client, []types.Filter{{Name: aws.String("tag-key"), Values: []string{tag.Policy}}}, func(s types.Snapshot) {
		out.add(snapshotFrom(s))
	})
	if err != nil {
		return nil, err
	}
	for _, p := range cfg.Policies {
		if p.Adopt == nil {
			continue
		}
		err := describeSnapshots(ctx, client, tagFilters(p.Adopt.Tags), func(s types.Snapshot) {
			tags := tagMap(s.Tags)
			if _, managed := tags[tag.Policy]; managed || !p.Adopts(tags) {
				return // listed above, or a filter the server ignored
			}
			sn := snapshotFrom(s)
			sn.Policy, sn.Adopted = p.Name, true
			if sn.Volume == copiedVolume {
				sn.Volume = ""
			}
			out.add(sn)
		})
		if err != nil {
			return nil, fmt.Errorf("listing snapshots adopted by policy %s: %w", p.Name, err)
		}
	}
	all := []Snapshot(out)
	if len(all) >= collectAfter {
		// The listing's garbage — every page's decoded answer — is collected before
		// deciding allocates: the next collection would otherwise come at twice a heap
		// still holding it (a plan of a million snapshots peaked at 0.95 GiB).
		runtime.GC()
	}
	return all, nil
}

// collectAfter is the size of a listing after which listSnapshots collects its garbage
// (snapshotList).
const collectAfter = 100_000

// snapshotList gathers listed snapshots in one slice that doubles when full. Go's own
// growth of a slice this large is a quarter at a time: appended a million times, it was
// copied whole so often that the copies were a sixth of a large plan's CPU. Doubling,
// each snapshot is copied about once in all, while the listing waits on the bucket, and
// the end of the listing copies nothing: gathering chunks and joining them there took 0.1
// to 1.1 s of a plan of a million snapshots, at the point where all else waits for it.
// Past collectAfter, each doubling is followed by a collection that returns the outgrown
// copy's memory: the next collection's goal is twice what it finds live, and found with
// the copy still live, a plan of a million snapshots peaked at 1.06 GiB; collected but
// kept by the process, at up to 0.93 GiB (now 0.79).
type snapshotList []Snapshot

func (l *snapshotList) add(s Snapshot) {
	if len(*l) == cap(*l) {
		*l = slices.Grow(*l, max(minListCap, len(*l)))
		if len(*l) >= collectAfter {
			debug.FreeOSMemory()
		}
	}
	*l = append(*l, s)
}

const minListCap = 4096

// copiedVolume is the VolumeId AWS gives a copied snapshot: no volume at all.
const copiedVolume = "vol-ffffffff"

// snapshotFrom reads what Decide needs from a listed snapshot. An unparseable snapfleet
// tag is named in Bad and blocks deletes in its scope.
func snapshotFrom(s types.Snapshot) Snapshot {
	out := Snapshot{
		ID:     aws.ToString(s.SnapshotId),
		Owner:  aws.ToString(s.OwnerId),
		Volume: aws.ToString(s.VolumeId),
		Start:  aws.ToTime(s.StartTime),
		State:  string(s.State),
		Tier:   string(s.StorageTier),
	}
	volumeTagged := false
	for _, t := range s.Tags {
		k, v := aws.ToString(t.Key), aws.ToString(t.Value)
		switch {
		case k == tag.Policy:
			out.Policy = v
			if !job.ValidPolicyName(v) {
				out.Bad = tag.Policy
			}
		case k == tag.Volume:
			volumeTagged = true
			out.Volume = v
		case k == tag.Job:
			out.Job = v
		case k == tag.Expires:
			if _, err := time.Parse(time.RFC3339, v); err != nil {
				out.Bad = tag.Expires
			}
		case k == tag.Source:
			out.Copy, out.origin().Snapshot = true, v
		case k == tag.SourceRegion:
			out.origin().Region = v
		case k == tag.SourceAccount:
			out.origin().Account = v
		case k == tag.SourceTime:
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				out.Bad = tag.SourceTime
			}
			out.origin().Start = t
		case tag.Protected(k):
			out.Protected = true
		}
	}
	if out.Job != "" {
		out.Set, out.Made = job.SetOf(out.Job, out.ID, aws.ToString(s.VolumeId), aws.ToString(s.Description))
		if out.Set != out.ID {
			out.Set = strings.Clone(out.Set) // not the Description's memory
		}
	}
	if !job.ValidVolumeID(out.Volume) {
		if volumeTagged {
			out.Bad = tag.Volume
		}
		out.Volume = ""
	}
	return out
}

func tagMap(tags []types.Tag) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}
