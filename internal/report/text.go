package report

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Offenders is how many late or missing volumes the text and HTML reports list (JSON
// lists them all).
const Offenders = 50

// WriteText prints the report for people: the headline, the counts per account-region
// and policy, the worst offenders, unprotected volumes, failures, cost and drills.
func (r *Report) WriteText(w io.Writer) {
	h := r.Headline
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "coverage at\t%s\n", r.Now.Format(time.RFC3339))
	fmt.Fprintf(tw, "volumes ok\t%d\n", h.VolumesOK)
	fmt.Fprintf(tw, "volumes late\t%d\n", h.VolumesLate)
	fmt.Fprintf(tw, "volumes missing\t%d\n", h.VolumesMissing)
	fmt.Fprintf(tw, "unprotected\t%d\n", h.Unprotected)
	fmt.Fprintf(tw, "opted out\t%d\n", h.OptedOut)
	fmt.Fprintf(tw, "error snapshots\t%d\n", h.ErrorSnapshots)
	fmt.Fprintf(tw, "pending snapshots\t%d\n", h.PendingSnapshots)
	if d := r.Failures.DeadLetters; d != nil {
		fmt.Fprintf(tw, "dead letters\t%d\n", d.Total)
	}
	fmt.Fprintf(tw, "recovery points\t%d (crash %d, application %d, archived %d, copies %d)\n", r.RecoveryPoints.Total,
		r.RecoveryPoints.Crash, r.RecoveryPoints.Application, r.RecoveryPoints.Archived, r.RecoveryPoints.Copies)
	fmt.Fprintf(tw, "estimated monthly cost\t$%.2f (upper bound)\n", h.MonthlyCostUSD)
	_ = tw.Flush()
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s/%s: %s\n", e.Account, e.Region, e.Error)
	}
	section(w, "ACCOUNT/REGION\tOK\tLATE\tMISSING\tUNPROTECTED\tOPTED OUT", r.ByScope, func(c StatusCount) string {
		return fmt.Sprintf("%s\t%d\t%d\t%d\t%d\t%d", c.Key, c.OK, c.Late, c.Missing, c.Unprotected, c.OptedOut)
	})
	section(w, "POLICY\tOK\tLATE\tMISSING", r.ByPolicy, func(c StatusCount) string {
		return fmt.Sprintf("%s\t%d\t%d\t%d", c.Key, c.OK, c.Late, c.Missing)
	})
	section(w, "STATUS\tACCOUNT\tREGION\tPOLICY\tVOLUME\tINSTANCE\tNEWEST\tLATE BY", r.WorstOffenders(), func(v VolumeStatus) string {
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", v.Status, v.Account, v.Region, v.Policy, v.Volume, v.Instance, newest(v.Newest), dash(v.LateBy))
	})
	section(w, "UNPROTECTED\tACCOUNT\tREGION\tINSTANCE", r.Unprotected, func(u Unselected) string {
		return fmt.Sprintf("%s\t%s\t%s\t%s", u.Volume, u.Account, u.Region, u.Instance)
	})
	section(w, "OPTED OUT\tACCOUNT\tREGION\tINSTANCE\tWHY", r.OptedOut, func(u Unselected) string {
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", u.Volume, u.Account, u.Region, u.Instance, u.Reason)
	})
	if d := r.Failures.DeadLetters; d != nil {
		section(w, "DEAD LETTER REASON\tCOUNT", d.ByReason, func(c Count) string { return fmt.Sprintf("%s\t%d", c.Key, c.Count) })
	}
	snaps := append(append([]SnapshotRef{}, r.Failures.Error...), r.Failures.Pending...)
	section(w, "SNAPSHOT\tSTATE\tACCOUNT\tREGION\tPOLICY\tVOLUME", snaps, func(s SnapshotRef) string {
		state := "pending"
		for _, e := range r.Failures.Error {
			if e.Snapshot == s.Snapshot {
				state = "error"
			}
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", s.Snapshot, state, s.Account, s.Region, s.Policy, s.Volume)
	})
	fmt.Fprintf(w, "\ncost: %s\n", r.Cost.Estimate)
	if m := r.Cost.Measured; m != nil {
		fmt.Fprintf(w, "measured: %d snapshots of %d volumes: %.1f GB billed of %.1f GB counted (ratio %.2f); standard tier at that ratio $%.2f a month, extrapolated\n",
			m.Snapshots, m.Volumes, m.ChangedGB, m.FullGB, m.Ratio, m.StandardUSD)
	}
	costRow := func(c Cost) string {
		return fmt.Sprintf("%s\t%d\t%.1f\t%.1f\t$%.2f", c.Key, c.Snapshots, c.StandardGB, c.ArchiveGB, c.USD)
	}
	section(w, "POLICY\tSNAPSHOTS\tSTANDARD GB\tARCHIVE GB\tUSD/MONTH", r.Cost.ByPolicy, costRow)
	section(w, "ACCOUNT\tSNAPSHOTS\tSTANDARD GB\tARCHIVE GB\tUSD/MONTH", r.Cost.ByAccount, costRow)
	for _, k := range sortedKeys(r.Cost.ByTag) {
		section(w, k+"\tSNAPSHOTS\tSTANDARD GB\tARCHIVE GB\tUSD/MONTH", r.Cost.ByTag[k], costRow)
	}
	if r.Drills.Note != "" {
		fmt.Fprintf(w, "\ndrills: %s\n", r.Drills.Note)
		return
	}
	section(w, "POLICY\tLAST DRILL\tRESTORED\tP50 S\tP99 S", r.Drills.ByPolicy, func(d PolicyDrill) string {
		if d.Last == nil || d.Drill == nil {
			return d.Policy + "\tnever\t-\t-\t-"
		}
		return fmt.Sprintf("%s\t%s\t%d of %d\t%.0f\t%.0f", d.Policy, d.Last.At.Format(time.RFC3339),
			d.Drill.Succeeded, d.Drill.Tried, d.Drill.P50, d.Drill.P99)
	})
}

// WorstOffenders are the first Offenders late or missing volumes.
func (r *Report) WorstOffenders() []VolumeStatus {
	var out []VolumeStatus
	for _, v := range r.Volumes {
		if v.Status == StatusOK || len(out) == Offenders {
			break
		}
		out = append(out, v)
	}
	return out
}

// section prints a table of rows under a header, nothing when there are none.
func section[T any](w io.Writer, header string, rows []T, row func(T) string) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, row(r))
	}
	_ = tw.Flush()
}

func newest(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format(time.RFC3339)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
