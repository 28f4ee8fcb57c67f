package job

import "fmt"

// CopyKey is the idempotency key of a copy job: one copy of a source snapshot in a
// destination account and region.
func CopyKey(destAccount, destRegion, srcSnapshot string) string {
	return destAccount + "/" + destRegion + "/" + srcSnapshot + "/copy"
}

// ArchiveKey is the idempotency key of an archive job: one snapshot to the archive tier.
func ArchiveKey(account, region, snapshot string) string {
	return account + "/" + region + "/" + snapshot + "/archive"
}

// validateCopyArchive checks the fields of snapshot.copy and snapshot.archive jobs.
func (j Job) validateCopyArchive() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	if j.Volume != "" && !ValidVolumeID(j.Volume) {
		return bad("volume", "%q is not a volume id", j.Volume)
	}
	if j.Instance != "" || j.Device != "" || j.Name != "" || j.Duplicate {
		return bad("instance", "instance, device, name and duplicate are not allowed in %s", j.Kind)
	}
	if j.Kind == KindArchive {
		if !ValidSnapshotID(j.Snapshot) {
			return bad("snapshot", "%q is not a snapshot id", j.Snapshot)
		}
		if j.SourceAccount != "" || j.SourceRegion != "" || j.SourceSnapshot != "" {
			return bad("source_snapshot", "source fields are allowed in %s only", KindCopy)
		}
		if want := ArchiveKey(j.Account, j.Region, j.Snapshot); j.Key != want {
			return bad("key", "%q is not %q", j.Key, want)
		}
		return nil
	}
	switch {
	case j.Snapshot != "":
		return bad("snapshot", "not allowed in %s (the copy is found by its job tag)", j.Kind)
	case !ValidAccount(j.SourceAccount):
		return bad("source_account", "%q is not a 12-digit account id", j.SourceAccount)
	case !ValidRegion(j.SourceRegion):
		return bad("source_region", "%q is not a region", j.SourceRegion)
	case !ValidSnapshotID(j.SourceSnapshot):
		return bad("source_snapshot", "%q is not a snapshot id", j.SourceSnapshot)
	case j.SourceAccount == j.Account && j.SourceRegion == j.Region:
		return bad("region", "a copy onto its source's own account and region")
	}
	if want := CopyKey(j.Account, j.Region, j.SourceSnapshot); j.Key != want {
		return bad("key", "%q is not %q", j.Key, want)
	}
	return nil
}
