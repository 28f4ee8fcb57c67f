package retention

import "time"

// Projection says whether retention keeps a snapshot now and will still keep it after a
// while, the policy going on meanwhile.
type Projection struct {
	// Now and Later: kept by the rules now, and at now+d.
	Now, Later bool
}

// Project decides the snapshots now and again at now+d, as they will stand then: the
// snapshots of today, plus, for a live volume (live), the one snapshot per period of
// every the policy will have made by then (period starts after now, aligned as periods
// are: start(now)+k*every). Snapshots with an unknown or future start time count for
// nothing, as in Decide. It returns the projection of each dated snapshot by id.
func Project(snaps []Snapshot, r Rules, now time.Time, periodStart time.Time, every time.Duration, live bool, d time.Duration) map[string]Projection {
	out := make(map[string]Projection, len(snaps))
	for _, dec := range Decide(snaps, r, now) {
		out[dec.ID] = Projection{Now: dec.Keep}
	}
	later := now.Add(d)
	future := append([]Snapshot(nil), snaps...)
	if live && every > 0 {
		for t := periodStart.Add(every); !t.After(later); t = t.Add(every) {
			future = append(future, Snapshot{ID: "\x00future " + t.Format(time.RFC3339), Start: t})
		}
	}
	for _, dec := range Decide(future, r, later) {
		if p, ok := out[dec.ID]; ok {
			p.Later = dec.Keep
			out[dec.ID] = p
		}
	}
	return out
}
