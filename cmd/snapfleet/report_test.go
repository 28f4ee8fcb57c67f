package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/snapfleet/snapfleet/internal/report"
	"github.com/snapfleet/snapfleet/internal/tag"
	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
)

const reportConfig = testConfig + `
report:
  cost_tags: [Team]
`

// reportFleet is a fleet with one volume in each state the report tells apart.
type reportFleet struct {
	ok, late, missing, optedOut, unprotected, errorSnap string
}

// buildReportFleet makes, at the test's day 0 (e.start): a running instance whose root
// volume was snapshotted 1 h ago (ok), a data volume 32 h ago (late by 2 h: every 24h plus
// the default grace of 6 h), a data volume never (missing; its one snapshot is in error,
// made so by the moto wrapper), a data volume tagged snapfleet:skip (opted out), and a
// stopped instance whose in-use root volume no policy selects (unprotected).
func (e *e2e) buildReportFleet(ctx context.Context) reportFleet {
	t := e.t
	a := e.fleet.Instances(ctx, 1, 3, nil)[0]
	b := e.fleet.Instances(ctx, 1, 0, nil)[0]
	e.fleet.Stop(ctx, b.ID)
	e.tag(ctx, a.Data[2], "snapfleet:skip", "true")
	managed := func(vol string) map[string]string {
		return map[string]string{tag.Policy: "daily", tag.Volume: vol, "Team": "ops"}
	}
	f := reportFleet{ok: a.Root, late: a.Data[0], missing: a.Data[1], optedOut: a.Data[2], unprotected: b.Root}
	e.fleet.SnapshotAt(ctx, f.ok, e.start.Add(-time.Hour), managed(f.ok))
	e.fleet.SnapshotAt(ctx, f.late, e.start.Add(-32*time.Hour), managed(f.late))
	e.moto.ShiftClock(t, time.Until(e.start.Add(-30*time.Minute)))
	out, err := e.ec2.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(f.missing),
		Description:       aws.String("snapfleet-test:state=error"),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: testfleet.Tags(managed(f.missing))}}})
	if err != nil {
		t.Fatal(err)
	}
	f.errorSnap = aws.ToString(out.SnapshotId)
	e.moto.ShiftClock(t, 0)
	return f
}

func (e *e2e) report(now time.Time, extra ...string) report.Report {
	e.t.Helper()
	var r report.Report
	e.runInto(0, &r, append([]string{"report", "--config", e.config, "--now", now.Format(time.RFC3339)}, extra...)...)
	return r
}

func statusOf(r report.Report, vol string) report.VolumeStatus {
	for _, v := range r.Volumes {
		if v.Volume == vol {
			return v
		}
	}
	return report.VolumeStatus{Status: "absent"}
}

// TestReportThroughMoto: report --output json names each volume's state — ok, late by 2 h,
// missing (an error snapshot does not count), opted out, unprotected — lists the error
// snapshot, estimates the cost from the sizes moto reports, and the states follow --now.
func TestReportThroughMoto(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	if err := os.WriteFile(e.config, []byte(reportConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	f := e.buildReportFleet(ctx)

	r := e.report(e.start)
	for vol, want := range map[string]string{f.ok: report.StatusOK, f.late: report.StatusLate, f.missing: report.StatusMissing} {
		if got := statusOf(r, vol); got.Status != want {
			t.Errorf("volume %s: %s, want %s", vol, got.Status, want)
		}
	}
	if late := statusOf(r, f.late); math.Abs(late.LateBySeconds-7200) > 60 || late.LateBy != "2h0m0s" {
		t.Errorf("late volume late by %vs (%s), want 2h", late.LateBySeconds, late.LateBy)
	}
	if len(r.Volumes) != 3 || r.Volumes[0].Volume != f.missing || r.Volumes[1].Volume != f.late {
		t.Errorf("volumes not worst first (missing, late, ok): %+v", r.Volumes)
	}
	if len(r.OptedOut) != 1 || r.OptedOut[0].Volume != f.optedOut || !strings.Contains(r.OptedOut[0].Reason, "snapfleet:skip=true") {
		t.Errorf("opted out: %+v, want %s by its tag", r.OptedOut, f.optedOut)
	}
	if len(r.Unprotected) != 1 || r.Unprotected[0].Volume != f.unprotected {
		t.Errorf("unprotected: %+v, want %s", r.Unprotected, f.unprotected)
	}
	if len(r.Failures.Error) != 1 || r.Failures.Error[0].Snapshot != f.errorSnap {
		t.Errorf("error snapshots: %+v, want %s", r.Failures.Error, f.errorSnap)
	}
	want := report.Headline{VolumesOK: 1, VolumesLate: 1, VolumesMissing: 1, Unprotected: 1, OptedOut: 1, ErrorSnapshots: 1,
		MonthlyCostUSD: 2 * 8 * 0.05} // two completed 8 GiB snapshots at the default standard price
	if r.Headline != want {
		t.Errorf("headline %+v, want %+v", r.Headline, want)
	}
	if team := r.Cost.ByTag["Team"]; len(team) != 1 || team[0].Key != "ops" || team[0].USD != 0.8 {
		t.Errorf("cost by Team: %+v, want ops $0.80", team)
	}
	if r.Drills.Note != report.NoDrills || r.Failures.DeadLetters != nil {
		t.Errorf("drills %+v, dead letters %+v: want none recorded and none asked", r.Drills, r.Failures.DeadLetters)
	}

	// Three hours earlier the late volume was within its RPO; 30 h later the ok one is late.
	if got := statusOf(e.report(e.start.Add(-3*time.Hour)), f.late).Status; got != report.StatusOK {
		t.Errorf("3 h earlier the late volume is %s, want ok", got)
	}
	later := e.report(e.start.Add(30 * time.Hour))
	if got := statusOf(later, f.ok); got.Status != report.StatusLate || math.Abs(got.LateBySeconds-3600) > 60 {
		t.Errorf("30 h later the ok volume is %s by %vs, want late by 1h", got.Status, got.LateBySeconds)
	}
	if got := statusOf(later, f.late); math.Abs(got.LateBySeconds-(32*3600)) > 60 {
		t.Errorf("30 h later the late volume is late by %vs, want 32h", got.LateBySeconds)
	}
}

// TestReportUsage: bad report flags are usage errors with one line, before any AWS call.
func TestReportUsage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "--output", "html"}, "--out"},
		{[]string{"plan", "--dry-run", "--output", "html"}, "html is for report only"},
		{[]string{"report", "--queue", "ftp://x"}, "--queue"},
		{[]string{"report", "--now", "yesterday"}, "--now"},
		{[]string{"report", "--config", filepath.Join(t.TempDir(), "none.yaml")}, "none.yaml"},
	} {
		r := runCLI(t, []string{"AWS_ENDPOINT_URL=http://127.0.0.1:1"}, tt.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line naming %s", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

// TestReportDeadLettersAndHTML: with --queue the report counts the jobs queue's dead
// letters by reason (here a malformed message a worker dead-lettered), leaving them in the
// DLQ; --output html --out writes the page with the same figures.
func TestReportDeadLettersAndHTML(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	f := e.buildReportFleet(ctx)
	db := "file:" + filepath.Join(t.TempDir(), "snapfleet.db")
	e.sendRaw(ctx, db, `{"v":1,"kind":"snapshot.create","key":"not a key"}`)
	if w := e.jsonCLI(0, "work", "--queue", db, "--idle-exit", "1s", "--now", e.start.Format(time.RFC3339)); num(t, w, "dead_lettered") != 1 {
		t.Fatalf("work %v, want 1 dead letter", w)
	}
	for range 2 { // the listing consumes nothing
		r := e.report(e.start, "--queue", db)
		d := r.Failures.DeadLetters
		if d == nil || d.Total != 1 || len(d.ByReason) != 1 || d.ByReason[0].Key != "invalid_message" || r.Headline.DeadLetters != 1 {
			t.Fatalf("dead letters %+v, headline %+v; want 1 invalid_message", d, r.Headline)
		}
	}
	out := filepath.Join(t.TempDir(), "report.html")
	if r := e.cli("report", "--config", e.config, "--now", e.start.Format(time.RFC3339), "--queue", db, "--output", "html", "--out", out); r.code != 0 || r.stdout != "" {
		t.Fatalf("report --output html: exit %d, stdout %q\n%s", r.code, r.stdout, tail(r.stderr))
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!DOCTYPE html>", "<svg", f.late, f.missing, f.unprotected, f.optedOut, f.errorSnap, "invalid_message",
		`id="volumes_late">1<`, `id="dead_letters">1<`, report.NoDrills} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the HTML report has no %q", want)
		}
	}
}

// TestReportMeasureChanges: --measure-changes lists, with the EBS direct API that moto
// serves, all the blocks of a sampled volume's first snapshot and the blocks each next one
// changed (two rewritten, one new), and reports them beside the full sizes the upper bound
// counts. The snapshots are written block by block through the same API; the moto wrapper
// serves AWS's ListChangedBlocks and ListSnapshotBlocks from moto's blocks.
func TestReportMeasureChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newE2E(t)
	in := e.fleet.Instances(ctx, 1, 0, nil)[0]
	direct := ebs.NewFromConfig(e.moto.AWSConfig(t))
	block := func(fill byte) []byte { return bytes.Repeat([]byte{fill}, 512<<10) }
	snapshot := func(at time.Time, blocks ...[]byte) {
		e.moto.ShiftClock(t, time.Until(at))
		defer e.moto.ShiftClock(t, 0)
		s, err := direct.StartSnapshot(ctx, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1), Tags: []ebstypes.Tag{
			{Key: aws.String(tag.Policy), Value: aws.String("daily")}, {Key: aws.String(tag.Volume), Value: aws.String(in.Root)}}})
		if err != nil {
			t.Fatalf("starting a snapshot: %v", err)
		}
		for i, b := range blocks {
			sum := sha256.Sum256(b)
			if _, err := direct.PutSnapshotBlock(ctx, &ebs.PutSnapshotBlockInput{SnapshotId: s.SnapshotId, BlockIndex: aws.Int32(int32(i)),
				BlockData: bytes.NewReader(b), DataLength: aws.Int32(int32(len(b))), Checksum: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
				ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256}); err != nil {
				t.Fatalf("writing block %d: %v", i, err)
			}
		}
		if _, err := direct.CompleteSnapshot(ctx, &ebs.CompleteSnapshotInput{SnapshotId: s.SnapshotId, ChangedBlocksCount: aws.Int32(int32(len(blocks)))}); err != nil {
			t.Fatalf("completing the snapshot: %v", err)
		}
	}
	snapshot(e.start.Add(-25*time.Hour), block('a'), block('b'), block('c'), block('d'))
	snapshot(e.start.Add(-time.Hour), block('a'), block('B'), block('C'), block('d'), block('e'))

	r := e.report(e.start, "--measure-changes")
	m := r.Cost.Measured
	if m == nil {
		t.Fatalf("no measurement in %+v", r.Cost)
	}
	wantChanged := float64(4+3) * (512 << 10) / (1 << 30)
	if m.Volumes != 1 || m.Snapshots != 2 || m.FullGB != 2 || math.Abs(m.ChangedGB-wantChanged) > 1e-12 || m.Note != report.MeasuredNote {
		t.Errorf("measured %+v; want 2 snapshots of 1 volume, 2 GB counted, %v GB changed", m, wantChanged)
	}
	if statusOf(r, in.Root).Status != report.StatusOK {
		t.Errorf("the volume is %s, want ok", statusOf(r, in.Root).Status)
	}
	if plain := e.report(e.start); plain.Cost.Measured != nil {
		t.Errorf("measured without --measure-changes: %+v", plain.Cost.Measured)
	}
}
