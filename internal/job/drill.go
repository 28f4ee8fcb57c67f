package job

import "fmt"

// DrillKey is the idempotency key of a drill job: one restore of a snapshot per drill.
func DrillKey(account, region, snapshot, drill string) string {
	return account + "/" + region + "/" + snapshot + "/drill/" + drill
}

// ValidDrillID reports whether s can be a drill id: 1 to 64 letters, digits, '-' or '_'.
func ValidDrillID(s string) bool { return validToken(s) }

// checkDrill checks the fields of a volume.drill job: a snapshot, a drill id, the key,
// and nothing of a create's or a delete's.
func checkDrill(j Job) error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
	}
	switch {
	case !ValidSnapshotID(j.Snapshot):
		return bad("snapshot", "%q is not a snapshot id", j.Snapshot)
	case !ValidDrillID(j.Drill):
		return bad("drill", "%q is not a drill id ([A-Za-z0-9_-], 1 to 64)", j.Drill)
	case j.Volume != "" || j.Instance != "" || j.Device != "" || j.Name != "" || j.InstanceTags != nil || j.Duplicate:
		return bad("volume", "volume, instance, device, name, instance_tags and duplicate are not allowed in %s", j.Kind)
	case j.Key != DrillKey(j.Account, j.Region, j.Snapshot, j.Drill):
		return bad("key", "%q is not %q", j.Key, DrillKey(j.Account, j.Region, j.Snapshot, j.Drill))
	}
	return nil
}
