package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/audit"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/queue"
	"github.com/snapfleet/snapfleet/worker"
)

// auditDelay and auditBatch bound a worker's audit batches: written at most auditDelay
// after their first record, or at auditBatch records.
const (
	auditDelay = time.Second
	auditBatch = 100
)

// auditor returns the worker's audit trail — the queue's journal (embedded queue) and
// snapfleet.Audit events (pub, when events.bus is set) — and the function that writes what
// is left when the worker stops; nil and a no-op when there is neither.
func (e *env) auditor(q queue.Queue, pub *event.Publisher) (worker.Auditor, func()) {
	var sinks []audit.Sink
	if j, ok := queue.JournalOf(q); ok {
		sinks = append(sinks, journalSink(j))
	}
	if s := event.AuditSink(pub); s != nil {
		sinks = append(sinks, s)
	}
	if len(sinks) == 0 {
		return nil, func() {}
	}
	b := audit.NewBatcher(auditDelay, auditBatch, func(err error, lost int) {
		e.log.Error().Err(err).Int("records", lost).Msg("writing the audit trail")
	}, sinks...)
	return b, b.Close
}

// journalSink appends records to the journal's audit stream, one transaction a batch.
func journalSink(j queue.Journal) audit.Sink {
	return audit.SinkFunc(func(ctx context.Context, recs []audit.Record) error {
		out := make([]queue.Record, 0, len(recs))
		for _, r := range recs {
			b, err := audit.Encode(r)
			if err != nil {
				return fmt.Errorf("encoding the audit record of %s: %w", r.Key, err)
			}
			out = append(out, queue.Record{At: r.At, Body: b})
		}
		return j.Append(ctx, audit.Stream, out...)
	})
}

var (
	auditSnapshotRE = regexp.MustCompile(`^snap-[0-9a-f]{8,17}$`)
	auditVolumeRE   = regexp.MustCompile(`^vol-[0-9a-f]{8,17}$`)
)

// auditFlags are the flags of `snapfleet audit`.
type auditFlags struct {
	queue, since, snapshot, volume string
}

// filter checks the flags and returns the filter they ask for; now is the clock of a
// --since given as a duration.
func (f auditFlags) filter(now time.Time) (audit.Filter, error) {
	var flt audit.Filter
	switch {
	case f.queue == "":
		return flt, usagef("audit: --queue is required (file:PATH of the embedded queue)")
	case f.snapshot != "" && f.volume != "":
		return flt, usagef("audit: give --snapshot or --volume, not both")
	case f.snapshot != "" && !auditSnapshotRE.MatchString(f.snapshot):
		return flt, usagef("--snapshot: %q is not a snapshot id (snap-…)", f.snapshot)
	case f.volume != "" && !auditVolumeRE.MatchString(f.volume):
		return flt, usagef("--volume: %q is not a volume id (vol-…)", f.volume)
	}
	if err := checkQueue(f.queue); err != nil {
		return flt, err
	}
	path, ok := strings.CutPrefix(f.queue, "file:")
	if !ok {
		return flt, usagef("--queue: %s is an SQS queue, which keeps no audit trail: a fleet's trail is the snapfleet.Audit events on events.bus (deploy/audit.yaml sends them to CloudWatch Logs)", f.queue)
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		return flt, usagef("--queue: %s: no such queue file", f.queue)
	}
	flt.Snapshot, flt.Volume = f.snapshot, f.volume
	if f.since != "" {
		t, err := parseSince(f.since, now)
		if err != nil {
			return flt, usagef("--since %q: %v", f.since, err)
		}
		flt.Since = t
	}
	return flt, nil
}

// parseSince reads --since: an RFC 3339 time, or a duration back from now (36h, 7d).
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := config.ParseClock(s); err == nil {
		return t, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return time.Time{}, errors.New("want an RFC 3339 time (2026-11-22T01:00:00Z) or a duration back from now (36h, 7d)")
	}
	return now.Add(-time.Duration(d)), nil
}

// auditResult is the JSON of `snapfleet audit`.
type auditResult struct {
	Total   int            `json:"total"`
	Records []audit.Record `json:"records"`
	// Unreadable counts journal entries that are not audit records (logged).
	Unreadable int `json:"unreadable"`
}

func newAuditCmd(g *globals) *cobra.Command {
	f := auditFlags{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit trail of an embedded queue: every snapshot created, deleted, skipped or refused, and every dead letter",
		RunE: func(cmd *cobra.Command, _ []string) error {
			flt, err := f.filter(time.Now())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			res, err := readAudit(ctx, f.queue, flt, g)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return g.printJSON(res)
			}
			writeAuditText(g, res)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.queue, "queue", "", "the embedded queue whose audit trail to read: file:PATH")
	fl.StringVar(&f.since, "since", "", "only records at or after this time (RFC 3339) or this long ago (36h, 7d)")
	fl.StringVar(&f.snapshot, "snapshot", "", "only records of this snapshot")
	fl.StringVar(&f.volume, "volume", "", "only records of this volume")
	return cmd
}

// readAudit reads the audit records of the queue file that pass flt, oldest first.
func readAudit(ctx context.Context, url string, flt audit.Filter, g *globals) (auditResult, error) {
	q, err := queue.Open(ctx, url, queue.Options{})
	if err != nil {
		return auditResult{}, usagef("--queue: %v", err)
	}
	defer q.Close()
	j, ok := queue.JournalOf(q)
	if !ok {
		return auditResult{}, usagef("--queue: %s keeps no journal", url)
	}
	res := auditResult{Records: []audit.Record{}}
	log := g.logger()
	err = j.Read(ctx, audit.Stream, flt.Since, func(qr queue.Record) error {
		r, err := audit.Decode(qr.Body)
		if err != nil {
			res.Unreadable++
			log.Warn().Err(err).Int64("seq", qr.Seq).Msg("skipping a journal entry")
			return nil
		}
		if flt.Match(r) {
			res.Records = append(res.Records, r)
		}
		return nil
	})
	res.Total = len(res.Records)
	return res, err
}

func writeAuditText(g *globals, res auditResult) {
	fmt.Fprintf(g.stdout, "%d audit records\n", res.Total)
	if res.Total == 0 {
		return
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tACTION\tREASON\tKIND\tACCOUNT\tREGION\tRESOURCE\tVOLUME\tRUN\tHOST\tPID")
	for _, r := range res.Records {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.At.UTC().Format(time.RFC3339Nano), r.Action,
			dash(r.Reason), dash(r.Kind), dash(r.Account), dash(r.Region), dash(r.Resource()), dash(r.Volume),
			dash(r.Run), dash(r.Host), r.PID)
	}
	tw.Flush()
}
