package sim

import (
	"encoding/xml"
	"net/url"
	"slices"
	"time"
)

// MaxCopiesInProgress is EC2's limit of CopySnapshot in progress per destination region
// (and account): one more is refused with ResourceLimitExceeded.
const MaxCopiesInProgress = 20

// copyState is the simulator's copies: how long one takes, and the most in progress at
// once per destination, as seen by the calls.
type copyState struct {
	took    time.Duration
	started int
	peak    map[scopeKey]int
}

// SetCopyTime makes every CopySnapshot complete d after it is called (0: at once).
func (s *Sim) SetCopyTime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.copies.took = d
}

// CopiesInProgress counts the copies still pending in account and region now.
func (s *Sim) CopiesInProgress(account, region string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeLocked(account, region)
	s.settleCopiesLocked(sc)
	return pendingCopies(sc)
}

// CopiesStarted counts the CopySnapshot calls that made a copy.
func (s *Sim) CopiesStarted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copies.started
}

// PeakCopies is the most copies that were in progress at once in account and region.
func (s *Sim) PeakCopies(account, region string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copies.peak[scopeKey{account, region}]
}

func (sn *Snapshot) status() string {
	if !sn.Ready.IsZero() {
		return "pending"
	}
	return "completed"
}

func (sn *Snapshot) tier() string {
	if sn.Tier == "" {
		return "standard"
	}
	return sn.Tier
}

// settleCopiesLocked completes the scope's copies whose time has come. It looks only at
// the copies in progress: it runs before every EC2 action, and a scope may hold a
// million snapshots.
func (s *Sim) settleCopiesLocked(sc *scope) {
	now := s.now()
	sc.copying = slices.DeleteFunc(sc.copying, func(sn *Snapshot) bool {
		if now.Before(sn.Ready) {
			return false
		}
		sn.Ready = time.Time{}
		return true
	})
}

func pendingCopies(sc *scope) int { return len(sc.copying) }

// tierResponse answers the tier actions.
type tierResponse struct {
	XMLName          xml.Name
	NS               string `xml:"xmlns,attr"`
	RequestID        string `xml:"requestId"`
	SnapshotID       string `xml:"snapshotId"`
	TieringStartTime string `xml:"tieringStartTime,omitempty"`
	RestoreStartTime string `xml:"restoreStartTime,omitempty"`
	RestoreDuration  int    `xml:"restoreDuration,omitempty"`
}

// copyActionLocked answers CopySnapshot, ModifySnapshotTier and RestoreSnapshotTier;
// ok is false for any other action. s.mu is held.
func (s *Sim) copyActionLocked(sc *scope, account, region, action string, form url.Values) (resp any, ok bool, err error) {
	switch action {
	case "CopySnapshot":
		src := s.scopeLocked(account, form.Get("SourceRegion"))
		_, from := src.snapshot(form.Get("SourceSnapshotId"))
		if from == nil {
			return nil, true, badRequest("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", form.Get("SourceSnapshotId"))
		}
		if pendingCopies(sc) >= MaxCopiesInProgress {
			return nil, true, badRequest("ResourceLimitExceeded", "You have reached the maximum number of concurrent snapshot copies (%d) in %s", MaxCopiesInProgress, region)
		}
		sn := &Snapshot{ID: s.idLocked("snap"), Volume: "vol-ffffffff", Owner: account, Description: form.Get("Description"),
			Start: s.now().UTC(), Tags: copyTags(snapshotTags(form))}
		if s.copies.took > 0 {
			sn.Ready = sn.Start.Add(s.copies.took)
			sc.copying = append(sc.copying, sn)
		}
		sc.snapshots = append(sc.snapshots, sn)
		s.copies.started++
		if s.copies.peak == nil {
			s.copies.peak = map[scopeKey]int{}
		}
		k := scopeKey{account, region}
		s.copies.peak[k] = max(s.copies.peak[k], pendingCopies(sc))
		out := &ec2Response{XMLName: xml.Name{Local: action + "Response"}, NS: ec2NS, RequestID: "sim", SnapshotID: sn.ID}
		return out, true, nil
	case "ModifySnapshotTier", "RestoreSnapshotTier":
		_, sn := sc.snapshot(form.Get("SnapshotId"))
		if sn == nil {
			return nil, true, badRequest("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", form.Get("SnapshotId"))
		}
		out := &tierResponse{XMLName: xml.Name{Local: action + "Response"}, NS: ec2NS, RequestID: "sim", SnapshotID: sn.ID}
		if action == "ModifySnapshotTier" {
			sn.Tier, out.TieringStartTime = "archive", ec2Time(s.now())
		} else {
			sn.Tier, out.RestoreStartTime = "", ec2Time(s.now())
		}
		return out, true, nil
	}
	return nil, false, nil
}
