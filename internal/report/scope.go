package report

import (
	"strings"
	"time"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/planner"
)

// Consistencies of a recovery point: application when its snapfleet:consistency tag says
// so, crash for every other.
const (
	Application = tag.Application
	Crash       = tag.Crash
)

// Volume is what the report reads of one volume.
type Volume struct {
	ID    string
	State string // in-use, available, ...
	// Tags of the volume (for the exclude tags).
	Tags map[string]string
}

// Snapshot is what the report reads of one managed snapshot owned by the account.
type Snapshot struct {
	ID     string
	Policy string
	// Volume is the snapfleet:volume tag, or the snapshot's VolumeId.
	Volume string
	Start  time.Time
	State  string
	// Bytes is the size AWS reports: FullSnapshotSizeInBytes, or VolumeSize when absent.
	Bytes    int64
	Archived bool
	// Consistency is Application or Crash.
	Consistency string
	// Copy: a copy of another snapshot (it carries snapfleet:source).
	Copy bool
	// CostTags holds the values of the configured cost tags it carries.
	CostTags map[string]string
}

// Scope is what the report read of one account-region: its instances and volumes as
// listed, and its snapshots folded in by Add as they are listed (a million snapshots are
// never held at once).
type Scope struct {
	Account, Region string
	// Instances are the instances in every state but terminated.
	Instances []planner.Instance
	// Volumes by id.
	Volumes map[string]Volume

	newest     map[volumeKey]time.Time
	points     Points
	pending    []SnapshotRef
	failed     []SnapshotRef
	costPolicy map[string]*Cost
	costTags   map[string]map[string]*Cost
	cfg        *config.Config
	// sample holds the standard-tier snapshots of the volumes --measure-changes measures
	// (chooseSample); nil when it does not.
	sample map[string][]sampled
}

type volumeKey struct{ policy, volume string }

// NewScope starts the report of one account-region.
func NewScope(cfg *config.Config, account, region string) *Scope {
	return &Scope{Account: account, Region: region, Volumes: map[string]Volume{}, newest: map[volumeKey]time.Time{},
		costPolicy: map[string]*Cost{}, costTags: map[string]map[string]*Cost{}, cfg: cfg}
}

// Add folds one owned, managed snapshot into the scope.
func (sc *Scope) Add(s Snapshot) {
	ref := func() SnapshotRef {
		return SnapshotRef{Account: sc.Account, Region: sc.Region, Policy: s.Policy, Volume: s.Volume, Snapshot: strings.Clone(s.ID), Start: s.Start}
	}
	switch s.State {
	case "error":
		sc.failed = append(sc.failed, ref())
		return // not a recovery point, not billed
	case "pending":
		sc.pending = append(sc.pending, ref())
	case "completed":
		sc.points.Total++
		if s.Consistency == Application {
			sc.points.Application++
		} else {
			sc.points.Crash++
		}
		if s.Archived {
			sc.points.Archived++
		}
		if _, measured := sc.sample[s.Volume]; measured && !s.Copy && !s.Archived {
			sc.sample[s.Volume] = append(sc.sample[s.Volume], sampled{id: strings.Clone(s.ID), start: s.Start, bytes: s.Bytes})
		}
		if s.Copy {
			sc.points.Copies++
		} else if s.Volume != "" {
			k := volumeKey{s.Policy, s.Volume}
			if t, ok := sc.newest[k]; !ok || s.Start.After(t) {
				if !ok {
					k = volumeKey{strings.Clone(s.Policy), strings.Clone(s.Volume)}
				}
				sc.newest[k] = s.Start
			}
		}
	}
	gb := float64(s.Bytes) / (1 << 30)
	add := func(c *Cost) {
		if s.Archived {
			c.ArchiveGB += gb
		} else {
			c.StandardGB += gb
		}
		c.Snapshots++
	}
	add(costOf(sc.costPolicy, s.Policy))
	for _, k := range sc.cfg.Report.CostTags {
		m := sc.costTags[k]
		if m == nil {
			m = map[string]*Cost{}
			sc.costTags[k] = m
		}
		v, ok := s.CostTags[k]
		if !ok {
			v = NoTag
		}
		add(costOf(m, v))
	}
}

// NoTag is the cost row of the snapshots without a cost tag.
const NoTag = "(none)"

func costOf(m map[string]*Cost, key string) *Cost {
	c := m[key]
	if c == nil {
		c = &Cost{Key: strings.Clone(key)}
		m[c.Key] = c
	}
	return c
}
