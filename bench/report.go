package main

// The table the bench prints: one row per scenario (BENCHMARKS.md, "Definitions").

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/snapfleet/snapfleet/internal/testbed/awslimits"
)

const tableHeader = "| scenario | account-regions | creates | deletes | workers | ideal s | done s | done s (from plan) | η create (min / all) | η delete (min / all) | creates/s (done / allowed) | throttled (create/delete/describe) | per-volume | dead letters | duplicates | AssumeRole | plan s | plan MiB | SQS/job (send/recv/del/vis/requeue/other) | Describe/job | EC2/job by action | CPU s per 1,000 jobs (work / sim+endpoint / plan) |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

// row is one scenario's figures.
type row struct {
	name                       string
	scopes, creates, deletes   int
	workers                    int
	ideal, done, doneFromPlan  float64 // seconds
	etaCreate, etaDelete, rate string
	throttled                  [3]int // create, delete, describe
	perVolume                  int
	dlq                        string
	deadLettered, dup, assumes int
	planSeconds, planMiB       float64
	ec2Calls                   map[string]int // per action, from the plan's start to the workers' end
	sqsCalls                   map[string]int // per action, same span; nil when not counted (moto)
	// cpu: user + system seconds of the workers (children), of the bench process (the
	// simulator and the endpoint, in-process) and of the plan, from the plan's start.
	cpu [3]time.Duration
}

func (r row) String() string {
	jobs := r.creates + r.deletes
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %.0f | %.0f | %.0f | %s | %s | %s | %d/%d/%d | %d | %s (work %d) | %d | %d | %.1f | %.0f | %s | %s | %s | %s |",
		r.name, r.scopes, r.creates, r.deletes, r.workers, r.ideal, r.done, r.doneFromPlan, r.etaCreate, r.etaDelete, r.rate,
		r.throttled[0], r.throttled[1], r.throttled[2], r.perVolume, r.dlq, r.deadLettered, r.dup, r.assumes,
		r.planSeconds, r.planMiB, sqsPerJob(r.sqsCalls, jobs), describePerJob(r.ec2Calls, jobs), ec2PerJob(r.ec2Calls, jobs), cpuPerJob(r.cpu, jobs))
}

// cpuPerJob is "work / sim+endpoint / plan" CPU seconds per 1,000 jobs.
func cpuPerJob(cpu [3]time.Duration, jobs int) string {
	if jobs == 0 {
		return "—"
	}
	f := func(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()*1000/float64(jobs)) }
	return f(cpu[0]) + " / " + f(cpu[1]) + " / " + f(cpu[2])
}

// cpuOf is the user and system time of a rusage.
func cpuOf(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// selfCPU is the bench process's own CPU time so far: the simulator's and the
// endpoint's, which run in it.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return cpuOf(&ru)
}

// sqsKind is what an SQS action counts as in the table. SendMessage is a single message:
// snapfleet sends one only to requeue a job or to dead-letter it (the plan sends batches).
var sqsKind = map[string]int{
	"SendMessageBatch": 0, "ReceiveMessage": 1, "DeleteMessage": 2, "DeleteMessageBatch": 2,
	"ChangeMessageVisibility": 3, "ChangeMessageVisibilityBatch": 3, "SendMessage": 4,
}

// sqsPerJob is "total (send/recv/del/vis/requeue/other)" requests per job.
func sqsPerJob(calls map[string]int, jobs int) string {
	if calls == nil || jobs == 0 {
		return "—"
	}
	var kinds [6]int
	total := 0
	for action, n := range calls {
		k, ok := sqsKind[action]
		if !ok {
			k = 5
		}
		kinds[k] += n
		total += n
	}
	parts := make([]string, len(kinds))
	for i, n := range kinds {
		parts[i] = perJob(n, jobs)
	}
	return perJob(total, jobs) + " (" + strings.Join(parts, "/") + ")"
}

// describePerJob is every Describe* call per job, as one figure.
func describePerJob(calls map[string]int, jobs int) string {
	if jobs == 0 {
		return "—"
	}
	n := 0
	for action, c := range calls {
		if strings.HasPrefix(action, "Describe") {
			n += c
		}
	}
	return perJob(n, jobs)
}

// ec2PerJob lists the EC2 actions called, most calls per job first.
func ec2PerJob(calls map[string]int, jobs int) string {
	if jobs == 0 || len(calls) == 0 {
		return "—"
	}
	actions := make([]string, 0, len(calls))
	for a := range calls {
		actions = append(actions, a)
	}
	sort.Slice(actions, func(i, j int) bool {
		if calls[actions[i]] != calls[actions[j]] {
			return calls[actions[i]] > calls[actions[j]]
		}
		return actions[i] < actions[j]
	})
	parts := make([]string, len(actions))
	for i, a := range actions {
		parts[i] = a + " " + perJob(calls[a], jobs)
	}
	return strings.Join(parts, ", ")
}

func perJob(n, jobs int) string { return fmt.Sprintf("%.2f", float64(n)/float64(jobs)) }

// byService keeps the calls of one service ("ec2:CreateSnapshot" → "CreateSnapshot"),
// less those counted in before (nil: none).
func byService(calls, before map[string]int, service string) map[string]int {
	out := map[string]int{}
	for k, n := range calls {
		if action, ok := strings.CutPrefix(k, service+":"); ok && n > before[k] {
			out[action] = n - before[k]
		}
	}
	return out
}

// minus is the counts of a beyond those of b.
func minus(a, b map[string]int) map[string]int {
	if a == nil {
		return nil
	}
	out := map[string]int{}
	for k, n := range a {
		if n > b[k] {
			out[k] = n - b[k]
		}
	}
	return out
}

// sqsCalls is the simulator's count of the calls it answered, SQS requests among them;
// nil on moto, which does not count them.
func (w *world) sqsCalls() map[string]int {
	if w.sim == nil {
		return nil
	}
	return w.sim.Calls()
}

// sqsSince is the SQS requests per action since before (a sqsCalls); nil on moto.
func (w *world) sqsSince(before map[string]int) map[string]int {
	if before == nil {
		return nil
	}
	return byService(w.sqsCalls(), before, "sqs")
}

// diagnose prints, on request, where the time went: the emulator's answer time per action
// (BENCH_UPSTREAM) and the creates/deletes done per account-region every 10 s from t0
// (BENCH_TRACE).
func diagnose(sc scenario, ep *awslimits.Server, t0 time.Time, window time.Duration) {
	if os.Getenv("BENCH_UPSTREAM") != "" {
		for k, u := range ep.Upstream() {
			fmt.Fprintf(os.Stderr, "bench: %s upstream %s: %d calls, mean %s\n", sc.name, k, u.Calls, u.Total/time.Duration(u.Calls))
		}
	}
	if os.Getenv("BENCH_TRACE") == "" {
		return
	}
	var steps []map[awslimits.Done]int
	for at := 10 * time.Second; at <= window+30*time.Second; at += 10 * time.Second {
		steps = append(steps, ep.DoneBy(t0.Add(at)))
	}
	traceBucket(sc, ep, t0, window)
	for _, s := range sc.scopes {
		line := fmt.Sprintf("bench: %s trace %s/%s:", sc.name, s.account, s.region)
		for _, by := range steps {
			line += fmt.Sprintf(" %d/%d", by[awslimits.Done{Account: s.account, Region: s.region, Action: "CreateSnapshot"}],
				by[awslimits.Done{Account: s.account, Region: s.region, Action: "DeleteSnapshot"}])
		}
		fmt.Fprintln(os.Stderr, line)
	}
}

// traceBucket prints, per account-region, where its CreateSnapshot bucket at the endpoint
// lost what η misses by t0+W (BENCH_TRACE): when the first create came, the refill lost
// while the bucket was full (from t0 to then, and any time later), the tokens left
// unused at t0+W, and the bucket's level every 10 s before.
func traceBucket(sc scenario, ep *awslimits.Server, t0 time.Time, window time.Duration) {
	lim := awslimits.DefaultLimits()[awslimits.BucketCreateSnapshot]
	for _, s := range sc.scopes {
		at := ep.DoneAt(awslimits.Done{Account: s.account, Region: s.region, Action: "CreateSnapshot"})
		level, lost, last := lim.Burst, 0.0, t0
		end := t0.Add(window)
		step := func(to time.Time) {
			level += lim.Refill * to.Sub(last).Seconds()
			if level > lim.Burst {
				lost += level - lim.Burst
				level = lim.Burst
			}
			last = to
		}
		first, levels := "none", ""
		mark := t0.Add(10 * time.Second)
		for i, t := range at {
			if !t.Before(end) {
				break
			}
			if i == 0 {
				first = fmt.Sprintf("+%.2fs", t.Sub(t0).Seconds())
			}
			for ; !mark.After(t) && mark.Before(end); mark = mark.Add(10 * time.Second) {
				step(mark)
				levels += fmt.Sprintf(" %.0f", level)
			}
			if t.After(last) {
				step(t)
			}
			level--
		}
		step(end)
		fmt.Fprintf(os.Stderr, "bench: %s bucket %s/%s: first create %s, refill lost to a full bucket %.1f, left at t0+W %.1f (level every 10 s:%s)\n",
			sc.name, s.account, s.region, first, lost, level, levels)
	}
}
