package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/recovery"
)

type restoreFlags struct {
	pointFlags
	az, attach, volType, kmsKey string
	size, iops, throughput      int32
	dryRun                      bool
	timeout                     time.Duration
	restoreDays                 int32
}

// restoreResult is the JSON of restore.
type restoreResult struct {
	DryRun   bool          `json:"dry_run"`
	Plan     recovery.Plan `json:"plan"`
	Volume   string        `json:"volume,omitempty"`
	Seconds  float64       `json:"seconds,omitempty"`
	Attached bool          `json:"attached"`
	// Archive: the point is in the archive tier; where its restore from there stands
	// (nothing was created: run again once it is ready).
	Archive *cloud.TierState `json:"archive,omitempty"`
}

// pollInterval is how often restore and drill read a volume they wait for.
const pollInterval = 2 * time.Second

func newRestoreCmd(g *globals) *cobra.Command {
	f := &restoreFlags{}
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Make a volume from a recovery point (of a volume at or before --at, a snapshot, or tags and a device), and optionally attach it",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(); err != nil {
				return err
			}
			e, err := g.setup(cmd.Context())
			if err != nil {
				return err
			}
			res, err := e.restore(cmd.Context(), g, f)
			if errors.Is(err, errPartial) {
				// An archived point whose restore from the archive is under way.
				if g.output == "json" {
					_ = g.printJSON(res)
				} else {
					writeRestore(g.stdout, res)
				}
				return err
			}
			if err != nil {
				var r *recovery.Refusal
				if errors.As(err, &r) && r.BadInput {
					return usageError{err}
				}
				return err
			}
			if g.output == "json" {
				return g.printJSON(res)
			}
			writeRestore(g.stdout, res)
			return nil
		},
	}
	g.addConfigFlags(cmd)
	f.add(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.snapshot, "snapshot", "", "restore this snapshot snap-…")
	fl.StringVar(&f.az, "az", "", "availability zone of the new volume (default: the source volume's, else the --attach instance's)")
	fl.StringVar(&f.attach, "attach", "", "attach the new volume to instance i-… (at --device, default the source's device)")
	fl.StringVar(&f.volType, "type", "", "volume type (default: the source volume's, else gp3)")
	fl.Int32Var(&f.size, "size", 0, "size in GiB, at least the snapshot's (default: the snapshot's)")
	fl.Int32Var(&f.iops, "iops", 0, "IOPS (default: the source volume's, for the same type)")
	fl.Int32Var(&f.throughput, "throughput", 0, "throughput in MiB/s, gp3 (default: the source volume's)")
	fl.StringVar(&f.kmsKey, "kms-key", "", "KMS key to encrypt the volume with (default: the snapshot's)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print exactly what it would do, create nothing")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Minute, "how long to wait for the volume to become available")
	fl.Int32Var(&f.restoreDays, "restore-days", 2, "an archived point is first restored from the archive tier for this many days (RestoreSnapshotTier)")
	return cmd
}

func (f *restoreFlags) check() error {
	if err := f.pointFlags.check("restore"); err != nil {
		return err
	}
	switch {
	case f.volume == "" && f.snapshot == "" && len(f.tags) == 0:
		return usagef("restore: give --volume, --snapshot or --tags")
	case f.attach != "" && !instanceIDRE.MatchString(f.attach):
		return usagef("--attach: %q is not an instance id (i-…)", f.attach)
	case f.device != "" && !deviceNameRE.MatchString(f.device):
		return usagef("--device: %q is not a device name (/dev/…)", f.device)
	case f.device != "" && f.attach == "" && len(f.tags) == 0:
		return usagef("--device: only with --attach or --tags")
	case f.size < 0 || f.iops < 0 || f.throughput < 0:
		return usagef("--size, --iops and --throughput cannot be negative")
	case f.timeout <= 0:
		return usagef("--timeout: %s is not positive", f.timeout)
	case f.restoreDays < 1 || f.restoreDays > 180:
		return usagef("--restore-days: %d is not between 1 and 180", f.restoreDays)
	}
	return nil
}

// restoreScopes are every configured account-region, and --region in every account: the
// copies found there are matched with their sources in the configured regions.
func (e *env) restoreScopes(ctx context.Context, region string) ([]recovery.Scope, error) {
	scopes, err := e.scopes(ctx, "", "")
	if err != nil {
		return nil, err
	}
	if region == "" {
		return scopes, nil
	}
	accounts := map[string]bool{}
	for _, sc := range scopes {
		if sc.Region == region {
			return scopes, nil
		}
		accounts[sc.Account] = true
	}
	for _, a := range slices.Sorted(maps.Keys(accounts)) {
		scopes = append(scopes, recovery.Scope{Account: a, Region: region, EC2: e.clients.EC2(a, region)})
	}
	return scopes, nil
}

// restore chooses the point, plans, and (unless a dry run) creates, waits and attaches.
func (e *env) restore(ctx context.Context, g *globals, f *restoreFlags) (restoreResult, error) {
	if f.account != "" {
		if _, err := e.scopes(ctx, f.account, ""); err != nil {
			return restoreResult{}, err
		}
	}
	scopes, err := e.restoreScopes(ctx, f.region)
	if err != nil {
		return restoreResult{}, err
	}
	sel := f.selector()
	listed, err := recovery.List(ctx, scopes, sel)
	if err != nil {
		return restoreResult{}, fmt.Errorf("finding the recovery points of %s: %w", sel, err)
	}
	p, err := recovery.Choose(listed, sel, f.account, f.region, f.atTime)
	if err != nil {
		return restoreResult{}, err
	}
	api := e.clients.EC2(p.Account, p.Region)
	if p.Tier == string(types.StorageTierArchive) {
		res, ready, err := e.fromArchive(ctx, api, p, f)
		if !ready {
			return res, err
		}
		p.Tier = string(types.StorageTierStandard)
	}
	plan, err := recovery.Prepare(ctx, api, recovery.Request{Point: p, AZ: f.az, Type: f.volType, KMSKey: f.kmsKey,
		Size: f.size, IOPS: f.iops, Throughput: f.throughput, Attach: f.attach, Device: f.device})
	if err != nil {
		return restoreResult{}, err
	}
	res := restoreResult{DryRun: f.dryRun, Plan: plan}
	if f.dryRun {
		return res, nil
	}
	start := time.Now()
	log := e.log.With().Str("account", plan.Account).Str("region", plan.Region).Str("snapshot", plan.Snapshot).Logger()
	if res.Volume, err = recovery.Create(ctx, api, plan); err != nil {
		return res, err
	}
	log.Info().Str("volume", res.Volume).Msg("volume created, waiting until it is available")
	wctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if _, err := recovery.Wait(wctx, api, res.Volume, pollInterval, recovery.Available, g.progress(log, res.Volume, start)); err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	if plan.Attach != "" {
		if err := recovery.Attach(ctx, api, plan, res.Volume); err != nil {
			return res, err
		}
		if _, err := recovery.Wait(wctx, api, res.Volume, pollInterval, recovery.Attached(plan.Attach), nil); err != nil {
			return res, err
		}
		res.Attached = true
	}
	return res, nil
}

// fromArchive makes an archived point usable: ready when a restore from the archive tier
// has completed; otherwise it starts one (unless a dry run) and answers errPartial with
// when it will be ready — the same command run again then continues.
func (e *env) fromArchive(ctx context.Context, api cloud.TierAPI, p recovery.Point, f *restoreFlags) (restoreResult, bool, error) {
	res := restoreResult{DryRun: f.dryRun, Plan: recovery.Plan{Account: p.Account, Region: p.Region, Snapshot: p.Snapshot,
		PointTime: p.Time, Policy: p.Policy}}
	if f.dryRun {
		res.Archive = &cloud.TierState{Snapshot: p.Snapshot, Tier: p.Tier}
		return res, false, errPartial
	}
	st, err := cloud.RestoreFromArchive(ctx, api, p.Snapshot, f.restoreDays)
	if err != nil {
		return res, false, fmt.Errorf("restoring %s from the archive tier: %w", p.Snapshot, err)
	}
	if st.Ready {
		return res, true, nil
	}
	res.Archive = &st
	e.log.Warn().Str("account", p.Account).Str("region", p.Region).Str("snapshot", p.Snapshot).Time("ready_by", st.ReadyBy).
		Bool("started", st.Started).Msg("archived snapshot: restoring it from the archive tier first; run restore again once it is ready")
	return res, false, errPartial
}

// progress shows a volume's state while restore waits: one rewritten line on a terminal,
// a log line per change of state otherwise.
func (g *globals) progress(log zerolog.Logger, volume string, start time.Time) func(string) {
	last := ""
	terminal := isTerminal(g.stderr)
	return func(state string) {
		elapsed := time.Since(start).Round(time.Second)
		if terminal {
			fmt.Fprintf(g.stderr, "\r%s: %s (%s)   ", volume, state, elapsed)
			if state == "available" {
				fmt.Fprintln(g.stderr)
			}
			return
		}
		if state != last {
			log.Info().Str("volume", volume).Str("state", state).Dur("elapsed", elapsed).Msg("volume state")
			last = state
		}
	}
}

func writeRestore(w io.Writer, r restoreResult) {
	p := r.Plan
	var tags []string
	for _, k := range slices.Sorted(maps.Keys(p.Tags)) {
		tags = append(tags, k+"="+p.Tags[k])
	}
	what := fmt.Sprintf("a %s volume of %d GiB in %s (%s/%s) from %s (taken %s, policy %s), encrypted %t",
		p.Type, p.SizeGiB, p.AZ, p.Account, p.Region, p.Snapshot, p.PointTime.Format(time.RFC3339), dash(p.Policy), p.Encrypted)
	if p.IOPS > 0 || p.Throughput > 0 {
		what += fmt.Sprintf(", %d IOPS, %d MiB/s", p.IOPS, p.Throughput)
	}
	if p.KMSKey != "" {
		what += ", KMS key " + p.KMSKey
	}
	what += ", tags " + strings.Join(tags, " ")
	if a := r.Archive; a != nil {
		switch {
		case r.DryRun:
			fmt.Fprintf(w, "dry run: %s is in the archive tier: would restore it from there first (RestoreSnapshotTier), and create the volume on a later run\n", p.Snapshot)
		case a.Started:
			fmt.Fprintf(w, "%s is in the archive tier: started its restore from there (ready by %s at the latest); run this command again then\n", p.Snapshot, a.ReadyBy.Format(time.RFC3339))
		default:
			fmt.Fprintf(w, "%s is being restored from the archive tier (since %s, ready by %s at the latest); run this command again then\n", p.Snapshot, a.StartedAt.Format(time.RFC3339), a.ReadyBy.Format(time.RFC3339))
		}
		return
	}
	if r.DryRun {
		fmt.Fprintln(w, "dry run: would create "+what)
		if p.Attach != "" {
			fmt.Fprintf(w, "dry run: would attach it to %s at %s\n", p.Attach, p.Device)
		}
		return
	}
	fmt.Fprintf(w, "restored %s: %s; available after %.0f s\n", r.Volume, what, r.Seconds)
	if r.Attached {
		fmt.Fprintf(w, "attached %s to %s at %s\n", r.Volume, p.Attach, p.Device)
	}
}
