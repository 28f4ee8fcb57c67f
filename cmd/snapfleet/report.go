package main

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/recovery"
	"github.com/snapfleet/snapfleet/internal/report"
	"github.com/snapfleet/snapfleet/queue"
)

type reportFlags struct {
	queue          string
	out            string
	measureChanges bool
}

func newReportCmd(g *globals) *cobra.Command {
	f := &reportFlags{}
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Coverage report: RPO per volume, unprotected volumes, failures, estimated cost, last drills",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.output == "html" && f.out == "" {
				return usagef("report: --output html needs --out FILE")
			}
			if f.queue != "" {
				if err := checkQueue(f.queue); err != nil {
					return err
				}
			}
			e, err := g.setup(cmd.Context())
			if err != nil {
				return err
			}
			rep, err := e.report(cmd.Context(), f.queue, f.measureChanges)
			if err != nil {
				return err
			}
			if err := g.writeReport(rep, f.out); err != nil {
				return err
			}
			if len(rep.Errors) > 0 {
				return errPartial
			}
			return nil
		},
	}
	g.addConfigFlags(cmd)
	cmd.Flags().StringVar(&f.queue, "queue", "", "jobs queue whose dead letters are counted by reason: an SQS queue URL or file:PATH")
	cmd.Flags().StringVar(&f.out, "out", "", "write the report to FILE instead of stdout (required with --output html)")
	cmd.Flags().BoolVar(&f.measureChanges, "measure-changes", false, fmt.Sprintf("measure what AWS bills for a sample of snapshots (%d volumes per account-region) with the EBS direct API's ListChangedBlocks, paced by a bucket of its own", report.MeasureSample))
	return cmd
}

// report resolves the accounts and regions, reads the dead letters of queueURL (when
// given) and builds the report, measuring changed blocks when measure is set.
func (e *env) report(ctx context.Context, queueURL string, measure bool) (*report.Report, error) {
	if err := e.checkAccounts(ctx); err != nil {
		return nil, err
	}
	accounts, regions, err := e.targets(ctx)
	if err != nil {
		return nil, err
	}
	r := &report.Reporter{Config: e.cfg, Accounts: accounts, Regions: regions, Now: e.now(), Log: e.log,
		EC2: func(account, region string) report.EC2 { return e.clients.EC2(account, region) }}
	if measure {
		r.EBS = func(account, region string) report.EBS { return e.clients.EBS(account, region) }
	}
	if queueURL != "" {
		r.Queue = queueURL
		jobs, err := e.openJobs(ctx, queueURL, dlqVisibility)
		if err != nil {
			return nil, err
		}
		defer jobs.Close()
		if r.DeadLetters, err = deadLetters(ctx, jobs, queueURL); err != nil {
			return nil, err
		}
		if jr, ok := queue.JournalOf(jobs); ok {
			recs, err := drillRecords(ctx, jr)
			if err != nil {
				return nil, err
			}
			r.Drills = drillList(recs)
		}
	}
	return r.Build(ctx)
}

// drillList is the drill records a report shows.
type drillList []recovery.Record

func (d drillList) LastDrills(context.Context) ([]recovery.Record, error) { return d, nil }

// deadLetters lists the dead letters of the jobs queue at url, as `dlq list` does.
func deadLetters(ctx context.Context, jobs queue.Queue, url string) ([]report.DeadLetter, error) {
	dlq, err := jobs.DLQ(ctx)
	if err != nil {
		return nil, fmt.Errorf("finding the dead-letter queue of %s: %w", url, err)
	}
	msgs, err := queue.Peek(ctx, dlq, 0)
	if err != nil {
		return nil, err
	}
	out := make([]report.DeadLetter, 0, len(msgs))
	for _, m := range msgs {
		j := lenient(m.Body)
		out = append(out, report.DeadLetter{Kind: j.Kind, Reason: m.Reason, Account: j.Account, Region: j.Region})
	}
	return out, nil
}

// writeReport writes the report in --output's format to --out, or stdout.
func (g *globals) writeReport(rep *report.Report, out string) error {
	var b bytes.Buffer
	switch g.output {
	case "json":
		sub := *g
		sub.stdout = &b
		if err := sub.printJSON(rep); err != nil {
			return err
		}
	case "html":
		if err := rep.WriteHTML(&b); err != nil {
			return fmt.Errorf("writing the HTML report: %w", err)
		}
	default:
		rep.WriteText(&b)
	}
	if out == "" {
		_, err := g.stdout.Write(b.Bytes())
		return err
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}
