package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/queue"
)

// dlqVisibility hides the dead letters a listing or a replay holds while it runs; both
// make what they did not move visible again at once when they end.
const dlqVisibility = 5 * time.Minute

func newDLQCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect and replay the dead-letter queue of a jobs queue",
	}
	cmd.AddCommand(newDLQListCmd(g), newDLQReplayCmd(g))
	return cmd
}

// openDLQ opens the jobs queue at url and its dead-letter queue; a jobs queue that does
// not exist or names no dead-letter queue is bad usage (openJobs).
func (g *globals) openDLQ(ctx context.Context, url string) (jobs, dlq queue.Queue, err error) {
	e, err := g.setup(ctx)
	if err != nil {
		return nil, nil, err
	}
	jobs, err = e.openJobs(ctx, url, dlqVisibility)
	if err != nil {
		return nil, nil, err
	}
	dlq, err = jobs.DLQ(ctx)
	if err != nil {
		jobs.Close()
		return nil, nil, fmt.Errorf("finding the dead-letter queue of %s: %w", url, err)
	}
	return jobs, dlq, nil
}

// letter is one dead letter as `dlq list` shows it.
type letter struct {
	Kind      string `json:"kind"`
	Key       string `json:"key"`
	Account   string `json:"account"`
	Region    string `json:"region"`
	Error     string `json:"error"`
	LastError string `json:"last_error"`
	Attempts  int    `json:"attempts"`
	// FirstFailureAt is when the job's first attempt began (the first receive of its
	// message); nil when unknown.
	FirstFailureAt *time.Time `json:"first_failure_at"`
	FailedAt       *time.Time `json:"failed_at"`
	SentAt         *time.Time `json:"sent_at"`
	ID             string     `json:"id"`
}

// group counts the dead letters of one kind, reason and account-region.
type group struct {
	Kind    string `json:"kind"`
	Error   string `json:"error"`
	Account string `json:"account"`
	Region  string `json:"region"`
	Count   int    `json:"count"`
}

type listSummary struct {
	Total    int      `json:"total"`
	Messages []letter `json:"messages"`
	Groups   []group  `json:"groups"`
}

// lenient reads what it can of a message body that may not be a valid job: kind, key,
// account and region of a JSON object, empty otherwise.
func lenient(body []byte) job.Job {
	var j job.Job
	if err := json.Unmarshal(body, &j); err != nil {
		// Fields may still be filled before the bad one; keep only strings that look right.
		var loose map[string]any
		if json.Unmarshal(body, &loose) != nil {
			return job.Job{}
		}
		str := func(k string) string { s, _ := loose[k].(string); return s }
		return job.Job{Kind: str("kind"), Key: str("key"), Account: str("account"), Region: str("region")}
	}
	return j
}

func toLetter(m queue.Message) letter {
	j := lenient(m.Body)
	l := letter{Kind: j.Kind, Key: j.Key, Account: j.Account, Region: j.Region,
		Error: m.Reason, LastError: m.LastError, Attempts: m.Attempts, ID: m.ID}
	l.FirstFailureAt, l.FailedAt, l.SentAt = utcOrNil(m.FirstReceivedAt), utcOrNil(m.FailedAt), utcOrNil(m.SentAt)
	return l
}

// utcOrNil is t in UTC, or nil for the zero time (unknown).
func utcOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func summarize(msgs []queue.Message) listSummary {
	s := listSummary{Total: len(msgs), Messages: make([]letter, 0, len(msgs)), Groups: []group{}}
	idx := map[group]int{}
	for _, m := range msgs {
		l := toLetter(m)
		s.Messages = append(s.Messages, l)
		k := group{Kind: l.Kind, Error: l.Error, Account: l.Account, Region: l.Region}
		if i, ok := idx[k]; ok {
			s.Groups[i].Count++
			continue
		}
		idx[k] = len(s.Groups)
		k.Count = 1
		s.Groups = append(s.Groups, k)
	}
	sort.Slice(s.Messages, func(a, b int) bool {
		x, y := s.Messages[a], s.Messages[b]
		if x.Error != y.Error {
			return x.Error < y.Error
		}
		if x.Kind != y.Kind {
			return x.Kind < y.Kind
		}
		return x.Key+x.ID < y.Key+y.ID
	})
	sort.Slice(s.Groups, func(a, b int) bool {
		x, y := s.Groups[a], s.Groups[b]
		if x.Count != y.Count {
			return x.Count > y.Count
		}
		return fmt.Sprint(x) < fmt.Sprint(y)
	})
	return s
}

func newDLQListCmd(g *globals) *cobra.Command {
	var queueURL string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the dead letters of a jobs queue, with their reasons, without consuming them",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if queueURL == "" {
				return usagef("dlq list: --queue is required")
			}
			ctx := cmd.Context()
			jobs, dlq, err := g.openDLQ(ctx, queueURL)
			if err != nil {
				return err
			}
			defer jobs.Close()
			msgs, err := queue.Peek(ctx, dlq, 0)
			if err != nil {
				return err
			}
			s := summarize(msgs)
			if g.output == "json" {
				return g.printJSON(s)
			}
			writeListText(g, dlq.URL(), s)
			return nil
		},
	}
	cmd.Flags().StringVar(&queueURL, "queue", "", "jobs queue (its dead-letter queue is listed): an SQS queue URL or file:PATH")
	cmd.Flags().StringVar(&g.configPath, "config", "", "config file (YAML): accounts and roles")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func writeListText(g *globals, url string, s listSummary) {
	fmt.Fprintf(g.stdout, "%d dead letters in %s\n", s.Total, url)
	if s.Total == 0 {
		return
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCOUNT\tKIND\tREASON\tACCOUNT/REGION")
	for _, gr := range s.Groups {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s/%s\n", gr.Count, dash(gr.Kind), dash(gr.Error), dash(gr.Account), dash(gr.Region))
	}
	fmt.Fprintln(tw, "\nKIND\tKEY\tACCOUNT\tREGION\tREASON\tATTEMPTS\tFIRST_FAILURE\tFAILED_AT\tLAST_ERROR")
	for _, l := range s.Messages {
		last := oneLine(l.LastError)
		if len(last) > 80 {
			last = last[:77] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", dash(l.Kind), dash(l.Key), dash(l.Account), dash(l.Region),
			dash(l.Error), l.Attempts, timeText(l.FirstFailureAt), timeText(l.FailedAt), dash(last))
	}
	tw.Flush()
}

// replayFlags are the filters of `dlq replay`.
type replayFlags struct {
	kind, account, region, reason string
	max                           int
	dryRun                        bool
}

var reasonRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func (f *replayFlags) check() error {
	switch {
	case f.kind != "" && !slices.Contains(job.Kinds, f.kind):
		return usagef("--kind: %q is not one of %s", f.kind, strings.Join(job.Kinds, ", "))
	case f.account != "" && !job.ValidAccount(f.account):
		return usagef("--account: %q is not a 12-digit account id", f.account)
	case f.region != "" && !job.ValidRegion(f.region):
		return usagef("--region: %q is not a region", f.region)
	case f.reason != "" && !reasonRE.MatchString(f.reason):
		return usagef("--error: %q is not a reason code (e.g. unknown_policy)", f.reason)
	case f.max < 0:
		return usagef("--max: %d is negative", f.max)
	}
	return nil
}

// match is the filter as a queue.Replay Match; nil when no filter is set.
func (f *replayFlags) match() func(queue.Message) bool {
	if f.kind == "" && f.account == "" && f.region == "" && f.reason == "" {
		return nil
	}
	return func(m queue.Message) bool {
		j := lenient(m.Body)
		return (f.kind == "" || j.Kind == f.kind) &&
			(f.account == "" || j.Account == f.account) &&
			(f.region == "" || j.Region == f.region) &&
			(f.reason == "" || m.Reason == f.reason)
	}
}

// replayOutgoing is the message a dead letter goes back as: its body unchanged and, for a
// FIFO jobs queue, the planner's group and a deduplication id of its own (the job key
// would be dropped as a duplicate within five minutes of the original send).
func replayOutgoing(m queue.Message) queue.Outgoing {
	o := queue.Outgoing{Body: m.Body, DedupID: "replay-" + m.ID}
	if j, err := job.Decode(m.Body); err == nil {
		o.DedupID, o.GroupID = j.Key+"#replay-"+m.ID, job.GroupID(j)
	}
	return o
}

func newDLQReplayCmd(g *globals) *cobra.Command {
	f := &replayFlags{}
	var queueURL string
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Move matching dead letters back to the jobs queue",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if queueURL == "" {
				return usagef("dlq replay: --queue is required")
			}
			if err := f.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			var prog *replayProgress
			if !f.dryRun {
				prog = g.startReplayProgress()
				defer g.endProgress()
			}
			jobs, dlq, err := g.openDLQ(ctx, queueURL)
			if err != nil {
				return err
			}
			defer jobs.Close()
			log := g.logger()
			prog.count(ctx, dlq)
			res, err := queue.Replay(ctx, dlq, jobs, queue.ReplayOptions{
				Match: f.match(), Outgoing: replayOutgoing, Max: f.max, DryRun: f.dryRun, Progress: prog.updater(),
			})
			if up := prog.updater(); up != nil {
				up(res)
			}
			g.endProgress()
			if res.Fallback != "" {
				log.Info().Str("reason", res.Fallback).Msg("no move task: replaying by receive, send and delete")
			}
			if err != nil {
				log.Error().Err(err).Int("moved", res.Moved).Int("failed", res.Failed).Msg("replay failed")
			}
			if g.output == "json" {
				if perr := g.printJSON(res); perr != nil {
					return perr
				}
			} else {
				writeReplayText(g, res)
			}
			if err != nil || res.Failed > 0 {
				return errPartial
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&queueURL, "queue", "", "jobs queue (its dead-letter queue is replayed into it): an SQS queue URL or file:PATH")
	fl.StringVar(&g.configPath, "config", "", "config file (YAML): accounts and roles")
	fl.StringVar(&f.kind, "kind", "", "only jobs of this kind: "+strings.Join(job.Kinds, ", "))
	fl.StringVar(&f.account, "account", "", "only jobs of this account (12 digits)")
	fl.StringVar(&f.region, "region", "", "only jobs of this region")
	fl.StringVar(&f.reason, "error", "", "only dead letters with this reason (e.g. unknown_policy)")
	fl.IntVar(&f.max, "max", 0, "move at most this many (0: no bound)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "move nothing: count what would move")
	return cmd
}

func writeReplayText(g *globals, r queue.ReplayResult) {
	if r.DryRun {
		fmt.Fprintf(g.stdout, "dry run: would move %d, skipped %d\n", r.Matched, r.Skipped)
		return
	}
	fmt.Fprintf(g.stdout, "moved %d, skipped %d, failed %d (matched %d, by %s)\n", r.Moved, r.Skipped, r.Failed, r.Matched, r.Method)
}
