package job

import (
	"strings"
)

// CreateDescription is the Description a create job's CreateSnapshot(s) call writes on
// its snapshots: "snapfleet POLICY KEY", and for an instance job " set SET" after it, SET
// being a random id of that one call (a Description cannot be changed afterwards).
func CreateDescription(policy, key, set string) string {
	d := "snapfleet " + policy + " " + key
	if set != "" {
		d += " set " + set
	}
	return d
}

// SetOf says which creation of key a snapshot carrying key belongs to, from its id,
// VolumeId and Description: for a volume's key the snapshot itself (its id); for an
// instance's key the set one CreateSnapshots call made (the SET of CreateDescription, ""
// for a set made before sets were named). ok is false for a snapshot no create call of
// key made: another Description (a hand-tagged or copied snapshot), a VolumeId that is
// not the key's volume (vol-ffffffff: a copy), or a key that is not a create key. Such a
// snapshot is never kept as, nor removed as, a duplicate.
func SetOf(key, id, volumeID, description string) (set string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 5 || id == "" {
		return "", false
	}
	resource, policy := parts[2], parts[3]
	base := CreateDescription(policy, key, "")
	switch {
	case strings.HasPrefix(resource, "vol-"):
		if description != base || volumeID != resource {
			return "", false
		}
		return id, true
	case strings.HasPrefix(resource, "i-"):
		if volumeID == "" || volumeID == copiedVolume {
			return "", false
		}
		if description == base {
			return "", true
		}
		if set, ok := strings.CutPrefix(description, base+" set "); ok && set != "" {
			return set, true
		}
	}
	return "", false
}

// copiedVolume is the VolumeId AWS gives a copied snapshot.
const copiedVolume = "vol-ffffffff"

// Made is a snapshot carrying one create key that a create call of that key made (SetOf).
type Made struct {
	ID, Set string
	// Failed: the snapshot is in the error state, no backup.
	Failed bool
}

// Keeper is the rule that settles duplicate creations of one job key: two workers that
// took copies of one create job at the same moment can both create (CreateSnapshot has no
// client token). The keeper is the set with the smallest Set (for a volume's key, the
// snapshot with the smallest id) among the sets none of whose snapshots failed; every
// other set is a duplicate. It depends on nothing but the sets' ids, fixed when they
// were made — not on StartTime (whole seconds on some endpoints) nor on when the observer
// looked — so every observer agrees: one that sees only some of the sets keeps a set
// that a later observer may remove, but nobody ever removes the smallest usable set, and
// a set's id is on each of its snapshots, so a set is never split (the keeper set stays
// whole, whatever part of it an observer saw). ok is false when no set is usable.
func Keeper(ms []Made) (set string, ok bool) {
	failed := map[string]bool{}
	for _, m := range ms {
		failed[m.Set] = failed[m.Set] || m.Failed
	}
	for s, f := range failed {
		if !f && (!ok || s < set) {
			set, ok = s, true
		}
	}
	return set, ok
}
