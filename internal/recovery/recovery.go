// Package recovery finds the recovery points snapfleet keeps — its managed snapshots and
// their copies in other regions and accounts — of a volume, of an instance (all its
// devices, from the snapshots' own tags, so it works after the instance is gone), or of a
// tag selector, and restores volumes from them (Restore, for restore and drill). It only
// lists (DescribeSnapshots filtered by tag) to find them; restores create volumes and never
// modify, detach or delete one they did not create (DESIGN.md §6.9).
package recovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/tag"
)

// Lister is what finding recovery points needs of EC2.
type Lister interface {
	DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
}

// Scope is one account-region and its EC2 client.
type Scope struct {
	Account, Region string
	EC2             Lister
}

// Selector says whose recovery points to find: exactly one of Snapshot, Volume, Instance
// or Tags (with an optional Device); none means every recovery point (drill).
type Selector struct {
	Snapshot, Volume, Instance string
	Tags                       map[string]string
	// Device narrows the points to one device (snapfleet:device).
	Device string
}

// Point is one recovery point: a snapshot, where it is, what it is of.
type Point struct {
	Account  string `json:"account"`
	Region   string `json:"region"`
	Snapshot string `json:"snapshot"`
	// Time is when the point was taken: its snapshot's StartTime, or for a copy whose
	// source was listed, its source's.
	Time        time.Time `json:"time"`
	Policy      string    `json:"policy,omitempty"`
	Consistency string    `json:"consistency"`
	State       string    `json:"state"`
	Progress    string    `json:"progress,omitempty"`
	Tier        string    `json:"tier"`
	SizeGiB     int32     `json:"size_gib"`
	Volume      string    `json:"volume,omitempty"`
	Instance    string    `json:"instance,omitempty"`
	Device      string    `json:"device,omitempty"`
	Encrypted   bool      `json:"encrypted"`
	KMSKey      string    `json:"kms_key,omitempty"`
	// Source is, on a copy, the snapshot it was copied from (snapfleet:source).
	Source string `json:"source,omitempty"`
	// Copies are the copies of this point found in the other account-regions.
	Copies []Point           `json:"copies,omitempty"`
	Tags   map[string]string `json:"-"`
}

// Completed reports whether a volume can be made from the point now.
func (p Point) Completed() bool {
	return p.State == string(types.SnapshotStateCompleted) && p.Tier != string(types.StorageTierArchive)
}

// filters are the server-side filters of sel.
func (sel Selector) filters() []types.Filter {
	f := func(name, value string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: []string{value}}
	}
	var fs []types.Filter
	switch {
	case sel.Snapshot != "":
		fs = append(fs, f("snapshot-id", sel.Snapshot))
	case sel.Volume != "":
		fs = append(fs, f("tag:"+tag.Volume, sel.Volume))
	case sel.Instance != "":
		fs = append(fs, f("tag:"+tag.Instance, sel.Instance))
	case len(sel.Tags) > 0:
		for _, k := range slices.Sorted(maps.Keys(sel.Tags)) {
			fs = append(fs, f("tag:"+k, sel.Tags[k]))
		}
	default:
		fs = append(fs, types.Filter{Name: aws.String("tag-key"), Values: []string{tag.Policy}})
	}
	if sel.Device != "" {
		fs = append(fs, f("tag:"+tag.Device, sel.Device))
	}
	return fs
}

// List finds the recovery points of sel in every scope, newest first. A copy whose source
// is listed is among its source's Copies rather than a point of its own (copies are found
// by their snapfleet:source tag too, whatever else they carry). A scope whose listing
// failed is left out, and its error joined to the one returned with the others' points.
func List(ctx context.Context, scopes []Scope, sel Selector) ([]Point, error) {
	var (
		all  []Point
		errs []error
	)
	seen := map[string]bool{}
	add := func(ps []Point) {
		for _, p := range ps {
			if !seen[p.Snapshot] {
				seen[p.Snapshot] = true
				all = append(all, p)
			}
		}
	}
	for _, sc := range scopes {
		ps, err := list(ctx, sc, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: sel.filters(), MaxResults: aws.Int32(1000)}, sel.Snapshot == "")
		if err != nil {
			errs = append(errs, fmt.Errorf("listing snapshots in %s/%s: %w", sc.Account, sc.Region, err))
			continue
		}
		add(ps)
	}
	ids := make([]string, 0, len(all))
	for _, p := range all {
		ids = append(ids, p.Snapshot)
	}
	if len(scopes) > 1 {
		for _, sc := range scopes {
			for chunk := range slices.Chunk(ids, 100) {
				ps, err := list(ctx, sc, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(1000),
					Filters: []types.Filter{{Name: aws.String("tag:" + tag.Source), Values: chunk}}}, true)
				if err != nil {
					errs = append(errs, fmt.Errorf("listing copies in %s/%s: %w", sc.Account, sc.Region, err))
					break
				}
				add(ps)
			}
		}
	}
	return group(all), errors.Join(errs...)
}

// list reads one listing of a scope: the snapshots its account owns (filtered by owner in
// code too: an emulator may return others'), and when managed only, those that are
// snapfleet's (snapfleet:policy) or copies of them (snapfleet:source).
func list(ctx context.Context, sc Scope, in *ec2.DescribeSnapshotsInput, managed bool) ([]Point, error) {
	var out []Point
	pages := ec2.NewDescribeSnapshotsPaginator(sc.EC2, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range page.Snapshots {
			if aws.ToString(s.OwnerId) != sc.Account {
				continue
			}
			p := pointOf(sc, s)
			if managed && p.Policy == "" && p.Source == "" {
				continue
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func pointOf(sc Scope, s types.Snapshot) Point {
	tags := map[string]string{}
	for _, t := range s.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	p := Point{
		Account: sc.Account, Region: sc.Region, Snapshot: aws.ToString(s.SnapshotId),
		Time: aws.ToTime(s.StartTime).UTC(), Policy: tags[tag.Policy], Consistency: tags[tag.Consistency],
		State: string(s.State), Progress: aws.ToString(s.Progress), Tier: string(s.StorageTier),
		SizeGiB: aws.ToInt32(s.VolumeSize), Volume: tags[tag.Volume], Instance: tags[tag.Instance],
		Device: tags[tag.Device], Encrypted: aws.ToBool(s.Encrypted), KMSKey: aws.ToString(s.KmsKeyId),
		Source: tags[tag.Source], Tags: tags,
	}
	if p.Consistency == "" {
		p.Consistency = "crash"
	}
	if p.Tier == "" {
		p.Tier = string(types.StorageTierStandard)
	}
	if p.Volume == "" && aws.ToString(s.VolumeId) != "vol-ffffffff" {
		p.Volume = aws.ToString(s.VolumeId)
	}
	return p
}

// group puts every copy whose source is listed under its source (taking the source's
// time), and sorts newest first.
func group(all []Point) []Point {
	byID := map[string]int{}
	for i, p := range all {
		byID[p.Snapshot] = i
	}
	var out []Point
	copies := map[string][]Point{}
	for _, p := range all {
		if i, ok := byID[p.Source]; ok && p.Source != p.Snapshot {
			src := all[i]
			p.Time = src.Time
			if p.Policy == "" {
				p.Policy = src.Policy
			}
			copies[src.Snapshot] = append(copies[src.Snapshot], p)
			continue
		}
		out = append(out, p)
	}
	for i := range out {
		out[i].Copies = copies[out[i].Snapshot]
	}
	Sort(out)
	return out
}

// Sort orders points newest first (then by account, region and snapshot id, for a stable
// order).
func Sort(ps []Point) {
	slices.SortStableFunc(ps, func(a, b Point) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(a.Account, b.Account),
			cmp.Compare(a.Region, b.Region), cmp.Compare(a.Snapshot, b.Snapshot))
	})
}

// Flatten is every point and every copy as a point of its own, newest first.
func Flatten(ps []Point) []Point {
	var out []Point
	for _, p := range ps {
		out = append(out, p)
		out = append(out, p.Copies...)
	}
	Sort(out)
	return out
}

// At returns the points taken at or before at (all of them when at is zero), newest first.
func At(ps []Point, at time.Time) []Point {
	if at.IsZero() {
		return ps
	}
	var out []Point
	for _, p := range ps {
		if !p.Time.After(at) {
			out = append(out, p)
		}
	}
	return out
}

// RestoredTags are the tags of a volume restored from p: snapfleet:restored-from and p's
// own tags but snapfleet's bookkeeping (the managed marker above all: a restored volume is
// not a snapshot snapfleet manages) and AWS's reserved aws:* keys.
func RestoredTags(p Point) map[string]string {
	out := map[string]string{}
	for k, v := range p.Tags {
		if strings.HasPrefix(k, config.ReservedTagPrefix) || strings.HasPrefix(k, "aws:") {
			continue
		}
		out[k] = v
	}
	out[tag.RestoredFrom] = p.Snapshot
	return out
}
