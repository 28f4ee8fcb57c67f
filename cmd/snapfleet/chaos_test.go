package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/testbed/faultproxy"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/queue"
	"github.com/snapfleet/snapfleet/worker"

	"github.com/snapfleet/snapfleet/internal/reason"
)

// The chaos tests run real snapfleet processes against moto with a faultproxy in front of
// moto's EC2 endpoint (SQS and STS go straight to moto). Workers run without --idle-exit,
// as in production: the test waits for the queue to empty and then stops them with
// SIGTERM, so a worker that exits early (or dies) is caught, and jobs hidden by a retry
// delay are not left behind by an idle exit.

// chaos is one chaos test's world: e2e plus a fault proxy and a jobs queue.
type chaos struct {
	*e2e
	proxy *faultproxy.Proxy
	url   string
	q     queue.Queue
}

func newChaos(t *testing.T) *chaos {
	t.Helper()
	e := newE2E(t)
	c := &chaos{e2e: e, proxy: faultproxy.Start(t, e.moto.Endpoint)}
	c.url = e.sqsQueues(context.Background(), "jobs")
	q, err := queue.Open(context.Background(), c.url, queue.Options{AWS: e.moto.AWSConfig(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	c.q = q
	return c
}

// instances runs n instances with a root and a data volume each and returns volume →
// instance.
func (c *chaos) instances(ctx context.Context, n int) map[string]string {
	c.t.Helper()
	began := time.Now()
	vols := map[string]string{}
	for _, in := range c.fleet.Instances(ctx, n, 1, nil) {
		for _, v := range in.Volumes() {
			vols[v] = in.ID
		}
	}
	c.t.Logf("fleet of %d instances × 2 volumes built in %v", n, time.Since(began).Round(time.Millisecond))
	return vols
}

// dropDefaultImages deregisters moto's default AMIs and deletes their snapshots, so that
// the worker's filtered DescribeSnapshots scan only the test's. Promise 1 (foreign
// snapshots) is tested elsewhere.
func (c *chaos) dropDefaultImages(ctx context.Context) {
	c.t.Helper()
	c.fleet.DropDefaultImages(ctx)
	if left := c.snapshots(ctx); len(left) != 0 {
		c.t.Fatalf("%d snapshots left after dropping moto's defaults", len(left))
	}
}

// plan enqueues the create jobs of the fleet (straight to moto) and returns the --now.
func (c *chaos) plan(want int) string {
	c.t.Helper()
	now := c.at(0)
	p := c.jsonCLI(0, "plan", "--queue", c.url, "--now", now)
	if got := num(c.t, p, "enqueued"); got != want {
		c.t.Fatalf("plan enqueued %d jobs, want %d: %v", got, want, p)
	}
	return now
}

// proc is a snapfleet process running in the background.
type proc struct {
	t        *testing.T
	name     string
	cmd      *exec.Cmd
	out, err bytes.Buffer
	done     chan struct{}
	code     int
	exited   time.Time
}

// spawn runs `snapfleet work` with EC2 through the proxy and JSON output.
func (c *chaos) spawn(name string, args ...string) *proc {
	c.t.Helper()
	return c.spawnVia(c.proxy, name, args...)
}

// spawnVia is spawn with EC2 through proxy fp.
func (c *chaos) spawnVia(fp *faultproxy.Proxy, name string, args ...string) *proc {
	c.t.Helper()
	args = append([]string{"work", "--queue", c.url, "--output", "json", "--config", c.config}, args...)
	p := &proc{t: c.t, name: name, cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), c.moto.Env()...), fp.Env()...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.exited = time.Now()
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	c.t.Cleanup(func() {
		if !p.finished() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if c.t.Failed() {
			c.t.Logf("%s's log, jobs and warnings only:\n%s", name, tail(outcomes(p.err.String())))
		}
	})
	return p
}

// outcomes keeps a worker log's lines that say what happened to a message or went
// wrong (what a failed chaos test needs to be explained), without the debug lines.
func outcomes(log string) string {
	var b strings.Builder
	for line := range strings.Lines(log) {
		if strings.Contains(line, `"outcome"`) || strings.Contains(line, `"level":"warn"`) ||
			strings.Contains(line, `"level":"error"`) || strings.Contains(line, "released") || strings.Contains(line, "exiting") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func (p *proc) finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signalling %s: %v", p.name, err)
	}
}

// kill9 kills the process with SIGKILL and waits for it.
func (p *proc) kill9() {
	p.t.Helper()
	p.signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM, wants exit 0 within limit, and returns the worker's summary.
func (p *proc) stop(limit time.Duration) worker.Stats {
	p.t.Helper()
	if p.finished() {
		p.t.Fatalf("%s exited early (code %d), before it was told to stop:\n%s", p.name, p.code, tail(p.err.String()))
	}
	sent := time.Now()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.t.Fatalf("%s did not exit within %v of SIGTERM", p.name, limit)
	}
	p.t.Logf("%s exited %v after SIGTERM", p.name, p.exited.Sub(sent).Round(time.Millisecond))
	return p.summary()
}

// summary wants exit 0 and decodes the worker's one JSON object.
func (p *proc) summary() worker.Stats {
	p.t.Helper()
	<-p.done
	if p.code != 0 {
		p.t.Fatalf("%s: exit %d\n%s", p.name, p.code, tail(p.err.String()))
	}
	var s worker.Stats
	if err := json.Unmarshal(p.out.Bytes(), &s); err != nil {
		p.t.Fatalf("%s: stdout %q: %v", p.name, p.out.String(), err)
	}
	return s
}

func sumStats(a, b worker.Stats) worker.Stats {
	return worker.Stats{
		Processed: a.Processed + b.Processed, Created: a.Created + b.Created, Deleted: a.Deleted + b.Deleted,
		Skipped: a.Skipped + b.Skipped, Retried: a.Retried + b.Retried, DeadLettered: a.DeadLettered + b.DeadLettered,
	}
}

// waitFor polls cond every 100ms until it holds, or fails the test after limit.
func (c *chaos) waitFor(what string, limit time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// drained reports whether the jobs queue holds nothing: visible, in flight or delayed.
func (c *chaos) drained() bool {
	st, err := c.q.Stats(context.Background())
	if err != nil {
		c.t.Fatalf("counting the queue: %v", err)
	}
	return st.Total() == 0
}

// exactlyOne asserts that every volume of vols has exactly one managed snapshot, and that
// there are no others.
func (c *chaos) exactlyOne(ctx context.Context, vols map[string]string) {
	c.t.Helper()
	byVol := managedByVolume(c.snapshots(ctx))
	bad := 0
	for vol := range vols {
		if n := len(byVol[vol]); n != 1 {
			bad++
			if bad <= 5 {
				c.t.Errorf("volume %s has %d managed snapshots, want 1", vol, n)
			}
		}
	}
	if bad > 5 {
		c.t.Errorf("... %d volumes in all without exactly one snapshot", bad)
	}
	for vol, snaps := range byVol {
		if _, ok := vols[vol]; !ok {
			c.t.Errorf("managed snapshots %d of unknown volume %q", len(snaps), vol)
		}
	}
}

// TestChaosKill9: three workers drain 200 create jobs while one worker is killed with
// SIGKILL, twice. The killed workers' messages come back after the visibility timeout and
// are finished by the others; every volume ends with exactly one snapshot.
//
// Creates are slow to answer (faultproxy LatencyAfter: the call takes effect, then the
// response is slow), so a kill lands after a create took effect more often than not. The
// workers that are killed talk to EC2 through a proxy of their own, which holds the answer
// of their next create for minutes just before the kill: each kill leaves at least one
// create done but never acknowledged, whose redelivered job must find its snapshot by the
// job tag rather than make a second one.
func TestChaosKill9(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newChaos(t)
	c.dropDefaultImages(ctx)
	vols := c.instances(ctx, 100)
	now := c.plan(len(vols))
	// Slow answers so that the drain lasts long enough to kill workers in the middle.
	slow := faultproxy.Rule{Action: "CreateSnapshot", LatencyAfter: 300 * time.Millisecond}
	c.proxy.Add(slow)
	victims := faultproxy.Start(t, c.moto.Endpoint)
	victims.Add(slow)
	args := []string{"--now", now, "--allow-clock-skew", "--visibility", "5s", "--concurrency", "4"}
	began := time.Now()
	w := []*proc{c.spawnVia(victims, "worker 1", args...), c.spawn("worker 2", args...), c.spawn("worker 3", args...)}
	creates := func() int {
		return c.proxy.Count("CreateSnapshot").Forwarded + victims.Count("CreateSnapshot").Forwarded
	}
	// holdNext makes the next create through the victims' proxy take effect and be
	// answered only after 10 minutes; killHeld kills p once that create has reached EC2.
	holdNext := func() faultproxy.RuleID {
		return victims.Add(faultproxy.Rule{Action: "CreateSnapshot", LatencyAfter: 10 * time.Minute, Limit: 1})
	}
	killHeld := func(p *proc, held faultproxy.RuleID) {
		t.Helper()
		c.waitFor("a create of "+p.name+" to be held", 60*time.Second, func() bool { return victims.Picked(held) == 1 })
		p.kill9()
		t.Logf("killed %s at %d creates, %v in, one create done but not answered", p.name, creates(), time.Since(began).Round(time.Millisecond))
	}

	c.waitFor("40 snapshots", 60*time.Second, func() bool { return creates() >= 40 })
	killHeld(w[0], holdNext())
	// Worker 4's first create is held from the start: waiting for it to create first
	// raced the other two workers, which could drain the queue before worker 4 made
	// another create (CI, a loaded machine).
	held := holdNext()
	w = append(w, c.spawnVia(victims, "worker 4", args...))
	killHeld(w[3], held)
	if creates() >= len(vols) {
		t.Fatalf("the second kill came after the drain (%d creates): slow the creates down", creates())
	}
	w = append(w, c.spawn("worker 5", args...))

	c.waitFor("the queue to drain", 90*time.Second, c.drained)
	t.Logf("drained in %v", time.Since(began).Round(time.Millisecond))
	var total worker.Stats
	for _, p := range []*proc{w[1], w[2], w[4]} {
		total = sumStats(total, p.stop(10*time.Second))
	}
	if total.DeadLettered != 0 {
		t.Errorf("survivors dead-lettered %d jobs", total.DeadLettered)
	}
	c.exactlyOne(ctx, vols)
	c.queueEmpty(ctx, c.url)
	// Found done: the jobs whose create had taken effect before a kill. The create held at
	// the second kill is redelivered to a worker that is never killed, which logs it.
	found := 0
	for _, p := range w {
		found += strings.Count(p.err.String(), `"action":"existed"`)
	}
	t.Logf("creates found done by their job tag: %d; survivors: %+v; proxies: %+v, victims' %+v", found, total, c.proxy.Counts(), victims.Counts())
	if found < 1 {
		t.Errorf("no create was found done by its job tag, want at least the one held at the second kill")
	}
}

// TestChaosSIGTERM: a worker told to stop while its jobs hang exits 0 within the grace
// period and releases its messages, which another worker finishes long before their 60 s
// visibility timeout would have passed.
func TestChaosSIGTERM(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newChaos(t)
	vols := c.instances(ctx, 6)
	now := c.plan(len(vols))
	// The first four creates (the stopping worker's) hang far past the grace period.
	c.proxy.Add(faultproxy.Rule{Action: "CreateSnapshot", Latency: 5 * time.Minute, Limit: 4})
	a := c.spawn("worker A", "--now", now, "--allow-clock-skew", "--visibility", "60s", "--shutdown-grace", "3s", "--concurrency", "4")
	c.waitFor("worker A to hold four jobs", 30*time.Second, func() bool { return c.proxy.Count("CreateSnapshot").Calls >= 4 })

	stopped := time.Now()
	// The held creates hang for 5 minutes: an exit within 15 s shows that the 3 s grace cut
	// them; the rest of the bound is room for a loaded machine (releasing four messages
	// to a slow moto took over 2 s once).
	sa := a.stop(3*time.Second + 12*time.Second)
	if took := a.exited.Sub(stopped); took < 3*time.Second-100*time.Millisecond {
		t.Errorf("worker A exited %v after SIGTERM, before its 3s grace was over: the jobs did not hang", took)
	}
	if sa.Processed != 0 || sa.Created != 0 {
		t.Errorf("worker A: %+v, want nothing processed (its jobs were released)", sa)
	}
	if !strings.Contains(a.err.String(), "released message at shutdown") && !strings.Contains(a.err.String(), `"outcome":"released"`) {
		t.Errorf("worker A logged no released message:\n%s", tail(a.err.String()))
	}

	b := c.spawn("worker B", "--now", now, "--allow-clock-skew", "--visibility", "60s", "--concurrency", "4")
	c.waitFor("worker B to drain the queue", 30*time.Second, c.drained)
	took := time.Since(stopped)
	if took > 30*time.Second {
		t.Errorf("released jobs finished %v after SIGTERM, want well under the 60s visibility", took)
	}
	sb := b.stop(10 * time.Second)
	if sb.Created != len(vols) || sb.DeadLettered != 0 {
		t.Errorf("worker B: %+v, want %d created", sb, len(vols))
	}
	c.exactlyOne(ctx, vols)
	c.queueEmpty(ctx, c.url)
	t.Logf("released jobs done %v after SIGTERM", took.Round(time.Millisecond))
}

// TestChaosLostResponse: CreateSnapshot takes effect but its answer is lost (a 500 for
// every other create, a reset connection for every third). The SDK does not resend the
// call; the job's retry finds the snapshot by its job tag. Every create reaches EC2 once
// per volume and no duplicate is ever made (none is deleted either).
func TestChaosLostResponse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newChaos(t)
	vols := c.instances(ctx, 6)
	now := c.plan(len(vols))
	c.proxy.Add(faultproxy.Rule{Action: "CreateSnapshot", Every: 2, Fault: faultproxy.LoseResponse})
	c.proxy.Add(faultproxy.Rule{Action: "CreateSnapshot", Every: 3, Fault: faultproxy.DropResponse})
	w := c.spawn("worker", "--now", now, "--allow-clock-skew", "--visibility", "5s", "--concurrency", "4")
	c.waitFor("the queue to drain", 60*time.Second, c.drained)
	s := w.stop(10 * time.Second)

	cs := c.proxy.Count("CreateSnapshot")
	if cs.Forwarded != len(vols) || cs.Calls != len(vols) {
		t.Errorf("CreateSnapshot: %+v, want exactly %d calls, one per volume", cs, len(vols))
	}
	if cs.Injected < len(vols)/2 {
		t.Errorf("only %d responses were lost", cs.Injected)
	}
	if n := c.proxy.Count("DeleteSnapshot").Calls; n != 0 {
		t.Errorf("DeleteSnapshot called %d times: duplicates were made", n)
	}
	if s.Retried < cs.Injected || s.DeadLettered != 0 || s.Created != len(vols)-cs.Injected {
		t.Errorf("worker: %+v, want %d retried, %d created, no dead letters", s, cs.Injected, len(vols)-cs.Injected)
	}
	c.exactlyOne(ctx, vols)
	c.queueEmpty(ctx, c.url)
}

// TestChaosThrottlingStorm: every other EC2 call is throttled for 10 s while three
// workers drain; all jobs complete with no dead letters and no duplicates left.
func TestChaosThrottlingStorm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newChaos(t)
	vols := c.instances(ctx, 25)
	now := c.plan(len(vols))
	c.proxy.Add(faultproxy.Rule{Action: faultproxy.All, Latency: 50 * time.Millisecond})
	c.proxy.Add(faultproxy.Rule{Action: faultproxy.All, Every: 2, Fault: faultproxy.Throttle, For: 10 * time.Second})
	began := time.Now()
	args := []string{"--now", now, "--allow-clock-skew", "--visibility", "5s", "--concurrency", "2"}
	w := []*proc{c.spawn("worker 1", args...), c.spawn("worker 2", args...), c.spawn("worker 3", args...)}
	c.waitFor("the queue to drain", 90*time.Second, c.drained)
	drained := time.Since(began)
	var total worker.Stats
	for _, p := range w {
		total = sumStats(total, p.stop(10*time.Second))
	}
	throttled := c.proxy.Count(faultproxy.All).Injected
	t.Logf("drained in %v; %d calls throttled; workers %+v; proxy %+v", drained.Round(time.Millisecond), throttled, total, c.proxy.Counts())
	if throttled < 20 {
		t.Errorf("only %d calls throttled: the storm missed the drain", throttled)
	}
	if total.DeadLettered != 0 {
		t.Errorf("workers: %+v, want no dead letters", total)
	}
	c.createdOnce(total, vols)
	c.exactlyOne(ctx, vols)
	c.queueEmpty(ctx, c.url)
}

// createdOnce checks the creates of several workers that drained one job per volume:
// faults whose calls take no effect (throttles, refused connections) make no duplicate.
// SQS (and moto, whose ReceiveMessage takes no lock) may deliver one message to two
// workers at once; both find no snapshot and create, and settle removes one and reports
// the job as existing (DESIGN.md §6.5). So extra creations are allowed only up to the
// deliveries beyond one per volume that succeeded, each is removed, and each such
// delivery is a create not counted.
func (c *chaos) createdOnce(total worker.Stats, vols map[string]string) {
	c.t.Helper()
	extraDone := total.Processed - total.Retried - total.Skipped - total.DeadLettered - len(vols)
	extra := c.proxy.Count("CreateSnapshot").Forwarded - len(vols)
	if extra > extraDone || total.Created > len(vols) || total.Created < len(vols)-extraDone {
		c.t.Errorf("workers %+v: %d creations beyond one per volume and %d created, with %d deliveries beyond one per volume done: duplicates were made",
			total, extra, total.Created, extraDone)
	}
	// Both workers of a duplicate may remove it (one gets NotFound): one or two deletes each.
	if n := c.proxy.Count("DeleteSnapshot").Calls; n < extra || n > 2*extra {
		c.t.Errorf("DeleteSnapshot called %d times for %d duplicate creations", n, extra)
	}
}

// TestChaosOutage: the EC2 endpoint resets every connection for 6 s while two workers
// run. They keep running, dead-letter nothing (5 receives with the retry back-off outlast
// the outage), and finish the jobs after it. (The outage need only outlast a job's first
// attempt, so that every job is retried: the back-off starts at 5 s.) The outage begins
// with the workers' first EC2 call: counted from before they started, a loaded machine
// that started them late left them the outage's last second, too short to fail a job.
func TestChaosOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newChaos(t)
	vols := c.instances(ctx, 10)
	now := c.plan(len(vols))
	const outage = 6 * time.Second
	rule := c.proxy.Add(faultproxy.Rule{Action: faultproxy.All, Fault: faultproxy.Outage, For: outage, FromFirstPick: true})
	args := []string{"--now", now, "--allow-clock-skew", "--visibility", "5s", "--concurrency", "4"}
	w := []*proc{c.spawn("worker 1", args...), c.spawn("worker 2", args...)}

	// Every call before the outage's end was refused: judged by the proxy's own clock, so
	// that a late look at the counts is no failure.
	c.waitFor("a call after the outage", 60*time.Second, func() bool { return !c.proxy.FirstPassed().IsZero() })
	began := c.proxy.FirstPick(rule)
	if passed := c.proxy.FirstPassed(); began.IsZero() || passed.Before(began.Add(outage)) || c.proxy.Picked(rule) == 0 {
		t.Fatalf("a call got through %v after the outage began, within its %v, or none was refused (%d)", passed.Sub(began), outage, c.proxy.Picked(rule))
	}
	for _, p := range w {
		if p.finished() {
			t.Fatalf("%s exited during the outage (code %d):\n%s", p.name, p.code, tail(p.err.String()))
		}
	}
	c.waitFor("the queue to drain after the outage", 60*time.Second, c.drained)
	t.Logf("drained %v after the outage began; %d calls refused", time.Since(began).Round(time.Millisecond), c.proxy.Picked(rule))
	var total worker.Stats
	for _, p := range w {
		total = sumStats(total, p.stop(10*time.Second))
	}
	if total.DeadLettered != 0 || total.Retried == 0 {
		t.Errorf("workers: %+v, want retries and no dead letters", total)
	}
	c.createdOnce(total, vols)
	c.exactlyOne(ctx, vols)
	c.queueEmpty(ctx, c.url)
}

// TestChaosPoison: malformed, oversized, unknown-version and unknown-kind messages in one
// batch with good jobs go to the DLQ with invalid_message on their first attempt; the
// good jobs of the batch are done.
func TestChaosPoison(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newChaos(t)
	vols := c.instances(ctx, 3)
	now := c.at(0)
	period := c.e2e.start.Truncate(24 * time.Hour)

	var good []string
	for vol, inst := range vols {
		b, err := job.Encode(job.Job{
			V: 1, Kind: job.KindCreate, Key: job.CreateKey(mototest.Account, mototest.Region, vol, "daily", period),
			Account: mototest.Account, Region: mototest.Region, Policy: "daily", Volume: vol, Instance: inst,
			Device: "/dev/xvda", Run: "chaos", PlannedAt: c.e2e.start,
		})
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, string(b))
	}
	valid := good[0]
	poison := map[string]string{
		"malformed":       valid[:len(valid)/2],
		"oversized":       strings.Replace(valid, `"run":"chaos"`, `"run":"`+strings.Repeat("x", 1100)+`"`, 1),
		"unknown version": strings.Replace(valid, `"v":1`, `"v":2`, 1),
		"unknown kind":    strings.Replace(valid, `"kind":"snapshot.create"`, `"kind":"snapshot.copy"`, 1),
	}
	var entries []sqstypes.SendMessageBatchRequestEntry
	names := map[string]string{}
	for i, body := range good {
		entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("good", i)), MessageBody: aws.String(body)})
		if i == 0 {
			for name, body := range poison {
				if body == valid {
					t.Fatalf("poison %q is the valid message", name)
				}
				names[body] = name
				entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strings.ReplaceAll(name, " ", "-")), MessageBody: aws.String(body)})
			}
		}
	}
	if len(entries) != 10 {
		t.Fatalf("%d entries, want one batch of 10", len(entries))
	}
	out, err := c.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(c.url), Entries: entries})
	if err != nil || len(out.Failed) > 0 {
		t.Fatalf("sending the batch: %v %v", err, out)
	}

	w := c.spawn("worker", "--now", now, "--allow-clock-skew", "--visibility", "5s", "--concurrency", "10")
	c.waitFor("the queue to drain", 30*time.Second, c.drained)
	s := w.stop(10 * time.Second)
	if s.Processed != 10 || s.Created != len(good) || s.DeadLettered != len(poison) || s.Retried != 0 {
		t.Errorf("worker: %+v, want 10 processed, %d created, %d dead-lettered, no retries", s, len(good), len(poison))
	}
	c.exactlyOne(ctx, vols)

	dlq, err := c.q.DLQ(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < len(poison) {
		msgs, err := dlq.Receive(ctx, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			name, ok := names[string(m.Body)]
			if !ok {
				t.Errorf("dead letter %.80q is not one of the poison messages", m.Body)
				continue
			}
			seen[name] = true
			if m.Reason != reason.InvalidMessage || m.Attempts != 1 || m.LastError == "" {
				t.Errorf("%s: reason %q, attempts %d, error %q; want invalid_message on attempt 1 with the error", name, m.Reason, m.Attempts, m.LastError)
			}
		}
	}
	for name := range poison {
		if !seen[name] {
			t.Errorf("%s message is not in the DLQ", name)
		}
	}
}
