package recovery

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// String names what sel selects, for messages.
func (sel Selector) String() string {
	var s string
	switch {
	case sel.Snapshot != "":
		s = "snapshot " + sel.Snapshot
	case sel.Volume != "":
		s = "volume " + sel.Volume
	case sel.Instance != "":
		s = "instance " + sel.Instance
	case len(sel.Tags) > 0:
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(sel.Tags)) {
			kv = append(kv, k+"="+sel.Tags[k])
		}
		s = "tags " + strings.Join(kv, ",")
	default:
		s = "any volume"
	}
	if sel.Device != "" {
		s += " device " + sel.Device
	}
	return s
}

// Choose picks the recovery point a restore starts from, among the points List found for
// sel: the snapshot named, or the newest completed point taken at or before at (zero:
// the newest). With account or region, only the points (copies included) there count;
// without, the originals (and copies whose source was not listed). It refuses, as bad
// input, a selection that matches nothing, nothing at or before at, or (tags without a
// device) several devices. A point that is not completed is returned only when no
// completed one is there: Prepare refuses it.
func Choose(listed []Point, sel Selector, account, region string, at time.Time) (Point, error) {
	cands := listed
	if account != "" || region != "" || sel.Snapshot != "" {
		cands = nil
		for _, p := range Flatten(listed) {
			if (account == "" || p.Account == account) && (region == "" || p.Region == region) {
				cands = append(cands, p)
			}
		}
	}
	where := "in the configured accounts and regions"
	if account != "" || region != "" {
		where = fmt.Sprintf("in %s/%s", orAll(account), orAll(region))
	}
	if len(cands) == 0 {
		if sel.Snapshot != "" {
			return Point{}, refuse(true, "--snapshot %s: not found %s (owned by them)", sel.Snapshot, where)
		}
		return Point{}, refuse(true, "no recovery point of %s %s", sel, where)
	}
	if len(sel.Tags) > 0 && sel.Device == "" {
		devices := map[string]bool{}
		for _, p := range cands {
			devices[p.Device] = true
		}
		if len(devices) > 1 {
			return Point{}, refuse(true, "--tags: %s match %d devices (%s): give --device", sel, len(devices), strings.Join(slices.Sorted(maps.Keys(devices)), ", "))
		}
	}
	before := At(cands, at)
	if len(before) == 0 {
		return Point{}, refuse(true, "no recovery point of %s at or before %s (the oldest is %s)", sel, at.UTC().Format(time.RFC3339), cands[len(cands)-1].Time.Format(time.RFC3339))
	}
	for _, p := range before {
		if p.State == string(types.SnapshotStateCompleted) {
			return p, nil
		}
	}
	return before[0], nil
}

func orAll(s string) string {
	if s == "" {
		return "*"
	}
	return s
}
