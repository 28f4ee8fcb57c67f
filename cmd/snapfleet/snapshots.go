package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/recovery"
)

var (
	volumeIDRE   = regexp.MustCompile(`^vol-[0-9a-f]{8,17}$`)
	snapshotIDRE = regexp.MustCompile(`^snap-[0-9a-f]{8,17}$`)
	instanceIDRE = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)
	deviceNameRE = regexp.MustCompile(`^/dev/[a-z0-9/]{1,32}$|^xvd[a-z0-9]{1,4}$`)
)

// pointFlags are the flags that choose recovery points, shared by snapshots and restore.
type pointFlags struct {
	volume, instance, snapshot, device string
	tags                               map[string]string
	account, region, at                string
	atTime                             time.Time
}

func (f *pointFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.volume, "volume", "", "the recovery points of volume vol-…")
	fl.StringToStringVar(&f.tags, "tags", nil, "the recovery points whose snapshots carry every one of these tags (k=v,...)")
	fl.StringVar(&f.device, "device", "", "with --tags: only the points of this device (snapfleet:device)")
	fl.StringVar(&f.account, "account", "", "only this configured account")
	fl.StringVar(&f.region, "region", "", "only this region (e.g. where copies are)")
	fl.StringVar(&f.at, "at", "", "only points taken at or before this time (RFC 3339)")
}

// check checks the flags as bad usage, before any AWS call.
func (f *pointFlags) check(command string) error {
	n := 0
	for _, set := range []bool{f.volume != "", f.instance != "", f.snapshot != "", len(f.tags) > 0} {
		if set {
			n++
		}
	}
	if n > 1 {
		return usagef("%s: give one of --volume, --instance, --snapshot or --tags", command)
	}
	switch {
	case f.volume != "" && !volumeIDRE.MatchString(f.volume):
		return usagef("--volume: %q is not a volume id (vol-…)", f.volume)
	case f.instance != "" && !instanceIDRE.MatchString(f.instance):
		return usagef("--instance: %q is not an instance id (i-…)", f.instance)
	case f.snapshot != "" && !snapshotIDRE.MatchString(f.snapshot):
		return usagef("--snapshot: %q is not a snapshot id (snap-…)", f.snapshot)
	case f.device != "" && !deviceNameRE.MatchString(f.device) && f.volume == "" && f.snapshot == "":
		return usagef("--device: %q is not a device name (/dev/…)", f.device)
	case f.account != "" && !job.ValidAccount(f.account):
		return usagef("--account: %q is not a 12-digit account id", f.account)
	case f.region != "" && !job.ValidRegion(f.region):
		return usagef("--region: %q is not a region", f.region)
	}
	for k, v := range f.tags {
		if k == "" || v == "" {
			return usagef("--tags: %q=%q: a key and a value are both needed", k, v)
		}
	}
	if f.at != "" {
		t, err := config.ParseClock(f.at)
		if err != nil {
			return usagef("--at %q: %v", f.at, err)
		}
		f.atTime = t
	}
	return nil
}

func (f *pointFlags) selector() recovery.Selector {
	sel := recovery.Selector{Volume: f.volume, Instance: f.instance, Snapshot: f.snapshot, Tags: f.tags}
	if len(f.tags) > 0 || f.instance != "" {
		sel.Device = f.device
	}
	return sel
}

// scopes are the configured account-regions, narrowed by --account (which must be one
// of them) and --region (any region: copies may live outside the config's regions).
func (e *env) scopes(ctx context.Context, account, region string) ([]recovery.Scope, error) {
	accounts, regions, err := e.targets(ctx)
	if err != nil {
		return nil, err
	}
	if account != "" {
		if !slices.Contains(accounts, account) {
			return nil, usagef("--account: %s is not a configured account (%s)", account, strings.Join(accounts, ", "))
		}
		accounts = []string{account}
	}
	if region != "" {
		regions = []string{region}
	}
	var out []recovery.Scope
	seen := map[[2]string]bool{}
	add := func(a, r string) {
		if !seen[[2]string{a, r}] {
			seen[[2]string{a, r}] = true
			out = append(out, recovery.Scope{Account: a, Region: r, EC2: e.clients.EC2(a, r)})
		}
	}
	for _, a := range accounts {
		for _, r := range regions {
			add(a, r)
		}
	}
	// The policies' copy destinations hold recovery points too (unless narrowed away).
	for _, p := range e.cfg.Policies {
		for _, c := range p.Copy {
			for _, a := range accounts {
				dest := cmp.Or(c.Account, a)
				if slices.Contains(accounts, dest) && (region == "" || c.Region == region) {
					add(dest, c.Region)
				}
			}
		}
	}
	return out, nil
}

// snapshotsResult is the JSON of snapshots.
type snapshotsResult struct {
	Total  int              `json:"total"`
	Points []recovery.Point `json:"points"`
	Errors []string         `json:"errors"`
}

func newSnapshotsCmd(g *globals) *cobra.Command {
	f := &pointFlags{}
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List the recovery points (managed snapshots and their copies) of a volume, an instance or a tag selector, newest first",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check("snapshots"); err != nil {
				return err
			}
			e, err := g.setup(cmd.Context())
			if err != nil {
				return err
			}
			scopes, err := e.scopes(cmd.Context(), f.account, f.region)
			if err != nil {
				return err
			}
			points, listErr := recovery.List(cmd.Context(), scopes, f.selector())
			points = recovery.At(points, f.atTime)
			res := snapshotsResult{Total: len(points), Points: points, Errors: []string{}}
			if res.Points == nil {
				res.Points = []recovery.Point{}
			}
			if listErr != nil {
				for _, line := range strings.Split(listErr.Error(), "\n") {
					res.Errors = append(res.Errors, line)
					e.log.Error().Msg(line)
				}
			}
			if g.output == "json" {
				if err := g.printJSON(res); err != nil {
					return err
				}
			} else {
				writePoints(g.stdout, points)
			}
			if listErr != nil {
				return errPartial
			}
			return nil
		},
	}
	g.addConfigFlags(cmd)
	f.add(cmd)
	cmd.Flags().StringVar(&f.instance, "instance", "", "the recovery points of every device of instance i-… (also once it is gone)")
	return cmd
}

// writePoints prints points as a table, newest first; copies follow their point.
func writePoints(w io.Writer, points []recovery.Point) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSNAPSHOT\tWHERE\tPOLICY\tCONSISTENCY\tSTATE\tTIER\tSIZE\tVOLUME\tDEVICE\tCOPIES")
	for _, p := range points {
		state := p.State
		if p.Progress != "" && p.State != "completed" {
			state += " " + p.Progress
		}
		var copies []string
		for _, c := range p.Copies {
			copies = append(copies, fmt.Sprintf("%s/%s:%s", c.Account, c.Region, c.Snapshot))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\t%d GiB\t%s\t%s\t%s\n",
			p.Time.Format(time.RFC3339), p.Snapshot, p.Account, p.Region, dash(p.Policy), p.Consistency,
			state, p.Tier, p.SizeGiB, dash(p.Volume), dash(p.Device), dash(strings.Join(copies, " ")))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d recovery points\n", len(points))
}
