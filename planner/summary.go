package planner

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteText prints the summary for people (--output text): the totals, the failures and,
// in a dry run, one line per decision.
func (s Summary) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	mode := ""
	if s.DryRun {
		mode = " (dry run: nothing enqueued)"
	}
	fmt.Fprintf(tw, "run\t%s%s\n", s.RunID, mode)
	fmt.Fprintf(tw, "accounts\t%d\n", s.Accounts)
	fmt.Fprintf(tw, "regions\t%d\n", s.Regions)
	fmt.Fprintf(tw, "instances\t%d\n", s.Instances)
	fmt.Fprintf(tw, "volumes\t%d\n", s.Volumes)
	fmt.Fprintf(tw, "snapshots seen\t%d\n", s.SnapshotsSeen)
	fmt.Fprintf(tw, "snapshot jobs\t%d\n", s.SnapshotJobs)
	fmt.Fprintf(tw, "delete jobs\t%d\n", s.DeleteJobs)
	fmt.Fprintf(tw, "enqueued\t%d\n", s.Enqueued)
	fmt.Fprintf(tw, "errors\t%d\n", s.Errors)
	_ = tw.Flush()
	for _, f := range s.Failures {
		fmt.Fprintf(w, "error: %s/%s: %s\n", f.Account, f.Region, f.Error)
	}
	if len(s.Decisions) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tREGION\tPOLICY\tACTION\tVOLUME\tSNAPSHOT\tINSTANCE\tREASON")
	for _, d := range s.Decisions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			d.Account, d.Region, d.Policy, d.Action, dash(d.Volume), dash(d.Snapshot), dash(d.Instance), d.Reason)
	}
	_ = tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
