package planner

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteText prints the summary for people (--output text or table): the totals, the
// warnings, the failures, one line per account-region and, in a dry run, the decisions of
// each account-region: what would be created, deleted (with the rule that expired it),
// kept (with the rules that keep it), protected and held.
func (s Summary) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	mode := ""
	if s.DryRun {
		mode = " (dry run: nothing enqueued)"
	}
	if s.Force {
		mode += " (--force: max_delete_fraction off)"
	}
	if s.CheckShares {
		mode += " (--check-shares: shared snapshots shown as protected)"
	}
	fmt.Fprintf(tw, "run\t%s%s\n", s.RunID, mode)
	if s.Event != nil {
		fmt.Fprintf(tw, "event\t%s %s\n", s.Event.DetailType, s.Event.ID)
	}
	fmt.Fprintf(tw, "accounts\t%d\n", s.Accounts)
	fmt.Fprintf(tw, "regions\t%d\n", s.Regions)
	fmt.Fprintf(tw, "instances\t%d\n", s.Instances)
	fmt.Fprintf(tw, "volumes\t%d\n", s.Volumes)
	fmt.Fprintf(tw, "snapshots seen\t%d\n", s.SnapshotsSeen)
	fmt.Fprintf(tw, "snapshot jobs\t%d\n", s.SnapshotJobs)
	fmt.Fprintf(tw, "delete jobs\t%d\n", s.DeleteJobs)
	if s.CopyJobs > 0 || s.ArchiveJobs > 0 {
		fmt.Fprintf(tw, "copy jobs\t%d\n", s.CopyJobs)
		fmt.Fprintf(tw, "archive jobs\t%d\n", s.ArchiveJobs)
	}
	fmt.Fprintf(tw, "kept\t%d\n", s.Kept)
	fmt.Fprintf(tw, "protected\t%d\n", s.Protected)
	fmt.Fprintf(tw, "held\t%d\n", s.Held)
	fmt.Fprintf(tw, "orphans\t%d\n", s.Orphans)
	fmt.Fprintf(tw, "enqueued\t%d\n", s.Enqueued)
	fmt.Fprintf(tw, "errors\t%d\n", s.Errors)
	_ = tw.Flush()
	for _, m := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", m)
	}
	for _, f := range s.Failures {
		fmt.Fprintf(w, "error: %s/%s: %s\n", f.Account, f.Region, f.Error)
	}
	if len(s.Scopes) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tREGION\tMANAGED\tORPHANS\tCREATE\tDELETE\tKEEP\tPROTECTED\tHELD\tBREAKER")
		for _, sc := range s.Scopes {
			if sc.Destination {
				sc.Region += " (copies)"
				sc.Creates = sc.Copies
			}
			breaker := "-"
			if sc.Breaker != nil {
				breaker = sc.Breaker.Reason
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", sc.Account, sc.Region, sc.Managed, sc.Orphans,
				sc.Creates, sc.Deletes, sc.Kept, sc.Protected, sc.Held, breaker)
		}
		_ = tw.Flush()
	}
	if len(s.Decisions) == 0 {
		return
	}
	scope := ""
	for _, d := range s.Decisions {
		if here := d.Account + " " + d.Region; here != scope {
			if scope != "" {
				_ = tw.Flush()
			}
			scope = here
			fmt.Fprintf(w, "\n%s %s\n", d.Account, d.Region)
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "POLICY\tACTION\tVOLUME\tSNAPSHOT\tINSTANCE\tREASON\tDETAIL")
		}
		volume := dash(d.Volume)
		if d.Orphan {
			volume += " (gone)"
		}
		reason := d.Reason
		if d.Adopted {
			reason += " (adopted)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			d.Policy, d.Action, volume, dash(d.Snapshot), dash(d.Instance), reason, dash(d.Detail))
	}
	_ = tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
