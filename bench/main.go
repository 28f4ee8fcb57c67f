// Command bench measures snapfleet against AWS's API limits: it starts an emulator (the
// in-memory internal/testbed/sim by default, or moto with -ec2 moto), puts the limits-faithful
// endpoint (internal/testbed/awslimits) in front of its EC2 and STS, builds a
// simulated fleet, and runs a real `snapfleet plan` and N real `snapfleet work`
// processes on the emulator's SQS (not limited: SQS limits are far above these). It
// prints, per scenario, η, throttled calls, dead letters, duplicates, AssumeRole calls,
// the planner's time and peak memory, and SQS requests and EC2 calls per job
// (bench/report.go). BENCHMARKS.md defines the figures.
//
//	go run ./bench                       # every scenario (make bench)
//	go run ./bench -scale 1              # the fleet sizes (about 7 minutes per 2,000)
//	go run ./bench -serve -target URL    # only the endpoint, in front of an emulator at URL
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	"github.com/snapfleet/snapfleet/internal/testbed/awslimits"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/internal/testbed/sim"
)

const ownAccount = "123456789012" // moto's default account: the caller's own

// scope is one account-region of a simulated fleet.
type scope struct {
	account, region string
	volumes         int
}

// scenario is one measured run.
type scenario struct {
	name    string
	scopes  []scope
	deletes bool // one expired snapshot per volume: deletes mixed with creates
	workers int
	// neighbour: another client's CreateSnapshot and DescribeSnapshots calls a second in
	// the (one) account-region during the run (bench/neighbour.go); 0 for none.
	neighbour float64
}

type options struct {
	scale         float64
	workers       string
	only          string
	concurrency   int
	ec2           string // "sim" or "moto": what answers EC2, STS and SQS
	linear        string // account-region counts of the linear scenarios
	linearWorkers int
	plan100k      bool // also plan one account-region of 100,000 × scale volumes (bench/plan100k.go)
	bin           string
	copies        int           // snapshots of copy/N (0: 2,000 at -scale)
	copyTime      time.Duration // how long a copy takes in the simulator
	// hooksInstances and hooksWorkers size the consistency: application scenario (hooks.go).
	hooksInstances, hooksWorkers, hooksVolumes int
}

func main() {
	var o options
	var serve bool
	var target, addr string
	flag.Float64Var(&o.scale, "scale", 0.25, "fleet size as a fraction of the issue's (2,000 volumes → 500 at 0.25)")
	flag.StringVar(&o.workers, "workers", "1,2,4", "worker process counts of the single account-region scenario")
	flag.StringVar(&o.only, "only", "", "run only scenarios whose name contains this")
	flag.IntVar(&o.concurrency, "concurrency", 4, "snapfleet work --concurrency")
	flag.StringVar(&o.ec2, "ec2", "sim", "what answers EC2, STS and SQS: sim (internal/testbed/sim, in memory) or moto")
	flag.StringVar(&o.linear, "linear", "1,4,16", "account-region counts of the linear/K scenarios (4 workers; 1,4,16,50 adds linear/50)")
	flag.IntVar(&o.linearWorkers, "linear-workers", 4, "snapfleet work processes of the linear/K scenarios")
	flag.BoolVar(&o.plan100k, "plan100k", false, "also plan one account-region of 100,000 × scale volumes and ten times as many snapshots (-only plan100k: that alone)")
	flag.IntVar(&o.copies, "copies", 0, "snapshots of the copy/N scenario (default 2,000 at -scale; bench/copy.go)")
	flag.DurationVar(&o.copyTime, "copy-time", 0, "how long a copy takes in the simulator (copy/N; default 60 s × -scale, at least 5 s)")
	var coverage [2]int
	flag.IntVar(&coverage[0], "coverage", 0, "instead of the scenarios: measure snapfleet report over this many volumes (bench/coverage.go)")
	flag.IntVar(&coverage[1], "coverage-snapshots", 0, "with -coverage: this many snapshots (default 10 per volume)")
	flag.IntVar(&o.hooksInstances, "hooks-instances", 200, "instances of the "+hooksName+" scenario")
	flag.IntVar(&o.hooksWorkers, "hooks-workers", 2, "worker processes of the "+hooksName+" scenario")
	flag.IntVar(&o.hooksVolumes, "hooks-volumes", 2, "volumes per instance of the "+hooksName+" scenario (each takes a CreateTags)")
	flag.BoolVar(&serve, "serve", false, "only run the endpoint in front of -target until interrupted")
	flag.StringVar(&target, "target", "", "with -serve: the emulator's URL")
	flag.StringVar(&addr, "addr", "127.0.0.1:4567", "with -serve: listen address")
	var cpuProfile string
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the simulator and the endpoint) to this file; SNAPFLEET_CPUPROFILE profiles the snapfleet processes")
	flag.Parse()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if serve {
		s, err := awslimits.New(target, addr, awslimits.Options{})
		if err != nil {
			fatal(err)
		}
		fmt.Fprintf(os.Stderr, "awslimits: %s → %s (AWS_ENDPOINT_URL_EC2=%s AWS_ENDPOINT_URL_STS=%s)\n", s.URL, target, s.URL, s.URL)
		<-ctx.Done()
		s.Close()
		return
	}
	if coverage[0] > 0 {
		if err := coverageBench(ctx, coverage[0], cmp.Or(coverage[1], 10*coverage[0])); err != nil {
			fatal(err)
		}
		return
	}
	if err := run(ctx, o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func scenarios(o options) []scenario {
	n := func(v int) int { return max(1, int(math.Round(float64(v)*o.scale))) }
	var out []scenario
	regions := []string{"us-east-1", "us-east-2", "us-west-2", "eu-north-1"}
	for i, w := range strings.Split(o.workers, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || k < 1 || i >= len(regions) {
			continue
		}
		out = append(out, scenario{name: fmt.Sprintf("single/%dw", k), workers: k,
			scopes: []scope{{ownAccount, regions[i], n(2000)}}})
	}
	// 20 light account-regions (5 member accounts × 4 regions, 100 × scale volumes each)
	// and one heavy account.
	fleet := scenario{name: "fleet/4w", workers: 4}
	for a := 1; a <= 5; a++ {
		for _, r := range []string{"eu-west-1", "eu-central-1", "ap-southeast-2", "ca-central-1"} {
			fleet.scopes = append(fleet.scopes, scope{strings.Repeat(strconv.Itoa(a), 12), r, n(100)})
		}
	}
	fleet.scopes = append(fleet.scopes, scope{"666666666666", "eu-west-1", n(2000)})
	out = append(out, fleet)
	out = append(out, scenario{name: "mixed/2w", workers: 2, deletes: true,
		scopes: []scope{{ownAccount, "sa-east-1", n(2000)}}})
	// single/2w's fleet while a neighbour spends 2 of the 5 creates and 2 of the 20
	// DescribeSnapshots a second (on the simulator, which makes the neighbour's volumes).
	if o.ec2 == "sim" {
		out = append(out, scenario{name: "neighbour/2w", workers: 2, neighbour: 2,
			scopes: []scope{{ownAccount, "ap-northeast-1", n(2000)}}})
	}
	// Throughput against the number of account-regions: K member accounts in one region,
	// 2,000 × scale volumes each, the same 4 workers.
	for _, v := range strings.Split(o.linear, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || k < 1 {
			continue
		}
		lin := scenario{name: fmt.Sprintf("linear/%d", k), workers: o.linearWorkers}
		for a := range k {
			lin.scopes = append(lin.scopes, scope{fmt.Sprintf("7%02d%09d", len(out), a), "us-west-1", n(2000)})
		}
		out = append(out, lin)
	}
	var kept []scenario
	for _, s := range out {
		if strings.Contains(s.name, o.only) {
			kept = append(kept, s)
		}
	}
	return kept
}

// simGOGC is the bench process's GOGC (unless GOGC says otherwise). The simulator stands
// in for AWS, whose servers do not share the machine with snapfleet; holding a million
// snapshots, it spent about a third of a CPU second collecting its garbage in every few
// seconds of a plan, on the two cores snapfleet was being measured on. A large-heap
// server's setting: the heap may grow to five times what is live (3 GiB at plan100k).
const simGOGC = 400

func run(ctx context.Context, o options) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(simGOGC)
	}
	dir, err := os.MkdirTemp("", "snapfleet-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.bin = filepath.Join(dir, "snapfleet")
	build := exec.CommandContext(ctx, "go", "build", "-o", o.bin, "./cmd/snapfleet")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building snapfleet: %w", err)
	}
	// One AMI instead of moto's thousands of default AMIs (and their snapshots) per region:
	// moto's DescribeSnapshots scans every snapshot, and the defaults made it take ~370 ms.
	amis := filepath.Join(dir, "amis.json")
	if err := os.WriteFile(amis, []byte(oneAMI), 0o644); err != nil {
		return err
	}
	os.Setenv("MOTO_AMIS_PATH", amis)
	w := &world{volumes: map[scope][]string{}}
	switch o.ec2 {
	case "sim":
		w.sim = sim.New(nil)
		url, stop, err := w.sim.Serve("127.0.0.1:0")
		if err != nil {
			return err
		}
		defer stop()
		w.endpoint = url
	case "moto":
		moto, err := mototest.StartServer()
		if err != nil {
			return fmt.Errorf("starting moto (make moto): %w", err)
		}
		defer moto.Stop()
		w.moto, w.endpoint = moto, moto.Endpoint
	default:
		return fmt.Errorf("-ec2 %q: want sim or moto", o.ec2)
	}
	ep, err := awslimits.New(w.endpoint, "127.0.0.1:0", awslimits.Options{})
	if err != nil {
		return err
	}
	defer ep.Close()

	rev, _ := exec.Command("git", "describe", "--always", "--dirty").Output()
	fmt.Printf("snapfleet bench: EC2 and STS %[1]s behind awslimits, SQS %[1]s, scale %.2f, snapfleet work --concurrency %d, %s, %d cores, tree %s\n\n",
		o.ec2, o.scale, o.concurrency, time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), strings.TrimSpace(string(rev)))
	if o.only == "plan100k" {
		return runPlan100k(ctx, o, w, ep, dir)
	}
	fmt.Println(tableHeader)
	for i, sc := range scenarios(o) {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := measure(ctx, o, w, ep, sc, dir, i)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		fmt.Println(r)
	}
	if strings.Contains(hooksName, o.only) {
		if err := runHooks(ctx, o, w, dir); err != nil {
			return fmt.Errorf("scenario %s: %w", hooksName, err)
		}
	}
	if o.ec2 == "sim" && strings.Contains(copyName(copyCount(o)), o.only) {
		if err := runCopy(ctx, o, w, ep, dir); err != nil {
			return fmt.Errorf("scenario %s: %w", copyName(copyCount(o)), err)
		}
	}
	if strings.Contains(drillName, o.only) {
		if err := measureDrill(ctx, o, w, ep, dir, len(scenarios(o))); err != nil {
			return err
		}
	}
	if o.plan100k {
		return runPlan100k(ctx, o, w, ep, dir)
	}
	return nil
}

const oneAMI = `[{"ami_id": "ami-03cf127a", "state": "available", "public": true, "owner_id": "801119661308",
 "image_location": "amazon/getting-started", "sriov": "simple", "root_device_type": "ebs", "root_device_name": "/dev/sda1",
 "description": "bench AMI", "image_type": "machine", "platform": "linux", "architecture": "x86_64",
 "name": "bench-linux", "virtualization_type": "hvm", "hypervisor": "xen"}]`

// base is an SDK config straight at the emulator (not limited), for building the fleet.
func base(endpoint, region string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

func roleARN(account string) string { return "arn:aws:iam::" + account + ":role/snapfleet-member" }

// ec2In is an EC2 client for account and region straight at the emulator.
func ec2In(endpoint, account, region string) *ec2.Client {
	cfg := base(endpoint, region)
	if account != ownAccount {
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), roleARN(account)))
	}
	return ec2.NewFromConfig(cfg)
}

// world is what the scenarios run on: EC2, STS and SQS of moto or of the simulator
// (internal/testbed/sim); EC2 and STS behind the limits-faithful endpoint, SQS straight.
type world struct {
	moto     *mototest.Server // nil: the simulator's
	sim      *sim.Sim         // nil: moto's
	endpoint string
	volumes  map[scope][]string
}

// build makes sc.volumes instances (one root volume each).
func (w *world) build(ctx context.Context, sc scope) error {
	if w.sim != nil {
		for _, in := range w.sim.AddInstances(sc.account, sc.region, sc.volumes, 1, "running", nil) {
			w.volumes[sc] = append(w.volumes[sc], in.Devices[0].Volume)
		}
		return nil
	}
	cl := ec2In(w.endpoint, sc.account, sc.region)
	imgs, err := cl.DescribeImages(ctx, &ec2.DescribeImagesInput{})
	if err != nil || len(imgs.Images) == 0 {
		return fmt.Errorf("describing moto's images in %s/%s: %v", sc.account, sc.region, err)
	}
	for left := sc.volumes; left > 0; left -= 100 {
		k := int32(min(left, 100))
		if _, err := cl.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId,
			MinCount: aws.Int32(k), MaxCount: aws.Int32(k), InstanceType: ec2types.InstanceTypeT3Micro}); err != nil {
			return fmt.Errorf("running instances in %s/%s: %w", sc.account, sc.region, err)
		}
	}
	return nil
}

// env is the environment of snapfleet processes: SQS straight to the emulator, EC2 and
// STS through the endpoint when limited.
func (w *world) env(ep *awslimits.Server) []string {
	e := append(os.Environ(), mototest.EnvFor(w.endpoint)...)
	if ep != nil {
		e = append(e, "AWS_ENDPOINT_URL_EC2="+ep.URL, "AWS_ENDPOINT_URL_STS="+ep.URL)
	}
	return e
}

type result struct {
	stdout, stderr []byte
	code           int
	wall           time.Duration
	maxRSS         int64         // KiB
	cpu            time.Duration // user + system
}

func snapfleet(ctx context.Context, o options, e []string, args ...string) result {
	cmd := exec.CommandContext(ctx, o.bin, args...)
	cmd.Env = e
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if dir := os.Getenv("BENCH_LOGS"); dir != "" {
		// Every process's log in a file of its own as well, for a post-mortem.
		if f, err := os.CreateTemp(dir, args[0]+"-*.log"); err == nil {
			defer f.Close()
			cmd.Stderr = io.MultiWriter(&errb, f)
		}
	}
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.Bytes(), stderr: errb.Bytes(), wall: time.Since(start)}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss
			r.cpu = cpuOf(ru)
		}
	} else if err != nil {
		r.code = -1
		r.stderr = append(r.stderr, err.Error()...)
	}
	return r
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func writeConfig(path string, sc scenario) error {
	var b strings.Builder
	regions := map[string]bool{}
	accounts := map[string]bool{}
	for _, s := range sc.scopes {
		regions[s.region] = true
		accounts[s.account] = true
	}
	b.WriteString("regions: [" + strings.Join(sortedKeys(regions), ", ") + "]\naccounts:\n")
	for _, a := range sortedKeys(accounts) {
		fmt.Fprintf(&b, "  - id: %q\n", a)
		if a != ownAccount {
			fmt.Fprintf(&b, "    role_arn: %s\n", roleARN(a))
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (w *world) queues(ctx context.Context, name string) (string, string, error) {
	cl := sqs.NewFromConfig(base(w.endpoint, mototest.Region))
	dlq, err := cl.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq")})
	if err != nil {
		return "", "", err
	}
	redrive := fmt.Sprintf(`{"deadLetterTargetArn":"arn:aws:sqs:%s:%s:%s-dlq","maxReceiveCount":"5"}`, mototest.Region, ownAccount, name)
	q, err := cl.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: map[string]string{
		"VisibilityTimeout": "30", "RedrivePolicy": redrive}})
	if err != nil {
		return "", "", err
	}
	return aws.ToString(q.QueueUrl), aws.ToString(dlq.QueueUrl), nil
}

func measure(ctx context.Context, o options, w *world, ep *awslimits.Server, sc scenario, dir string, idx int) (row, error) {
	for _, s := range sc.scopes {
		if err := w.build(ctx, s); err != nil {
			return row{}, err
		}
	}
	cfgPath := filepath.Join(dir, fmt.Sprintf("config-%d.yaml", idx))
	if err := writeConfig(cfgPath, sc); err != nil {
		return row{}, err
	}
	now := time.Now().UTC().Add(time.Duration(idx) * 24 * time.Hour)
	if sc.deletes {
		// Two earlier snapshots of every volume, made before the window (not measured): at
		// now+40d both are past max_age 30d, the newer is the floor (min_keep 1), the older
		// is deleted while the new period's snapshot is created. On the simulator they are
		// seeded as snapfleet would have made them; on moto, snapfleet makes them.
		for d, at := range []time.Time{now, now.Add(24 * time.Hour)} {
			if w.sim != nil {
				w.seedManaged(sc, at)
				continue
			}
			q, _, err := w.queues(ctx, fmt.Sprintf("prep%d-%d", idx, d))
			if err != nil {
				return row{}, err
			}
			nowArg := at.Format(time.RFC3339)
			if r := snapfleet(ctx, o, w.env(nil), "plan", "--config", cfgPath, "--queue", q, "--now", nowArg); r.code != 0 {
				return row{}, fmt.Errorf("preparing: plan exit %d: %s", r.code, tail(r.stderr))
			}
			if r := snapfleet(ctx, o, w.env(nil), "work", "--config", cfgPath, "--queue", q, "--now", nowArg, "--allow-clock-skew", "--idle-exit", "2s", "--concurrency", "16"); r.code != 0 {
				return row{}, fmt.Errorf("preparing: work exit %d: %s", r.code, tail(r.stderr))
			}
		}
		now = now.Add(40 * 24 * time.Hour)
	}
	q, dlq, err := w.queues(ctx, fmt.Sprintf("bench%d", idx))
	if err != nil {
		return row{}, err
	}
	nowArg := now.Format(time.RFC3339)
	e := w.env(ep)
	ep.Reset()
	// What the scenario asks of AWS is counted from here (the plan's start) to the
	// workers' end: EC2 calls at the endpoint, SQS requests at the simulator.
	sqsBefore := w.sqsCalls()
	selfBefore := selfCPU()
	tPlan := ep.Now()
	planArgs := []string{"plan", "--config", cfgPath, "--queue", q, "--now", nowArg, "--output", "json"}
	if sc.deletes {
		planArgs = append(planArgs, "--force") // half of every volume's snapshots go: past the circuit breaker
	}
	pr := snapfleet(ctx, o, e, planArgs...)
	planEC2, planSQS := byService(ep.Calls(), nil, "ec2"), w.sqsSince(sqsBefore)
	if pr.code != 0 {
		return row{}, fmt.Errorf("plan exit %d: %s", pr.code, tail(pr.stderr))
	}
	var plan map[string]any
	if err := json.Unmarshal(pr.stdout, &plan); err != nil {
		return row{}, fmt.Errorf("plan output %q: %w", pr.stdout, err)
	}

	// The window starts when the workers start, with full create and delete buckets
	// (the planner only used Describe* buckets).
	t0 := ep.Now()
	stopNeighbour := func() *neighbour { return nil }
	if sc.neighbour > 0 && w.sim != nil {
		stopNeighbour = w.startNeighbour(ctx, ep, sc.scopes[0], sc.neighbour, snapfleetDone(ep, sc.scopes[0]))
	}
	work, workCPU, werr := runWorkers(ctx, o, e, sc.workers, "--config", cfgPath, "--queue", q, "--now", nowArg,
		"--allow-clock-skew", "--idle-exit", "2s", "--concurrency", strconv.Itoa(o.concurrency))
	nb := stopNeighbour()
	benchCPU := selfCPU() - selfBefore
	if werr != nil {
		return row{}, werr
	}
	ec2Calls, sqsCalls := byService(ep.Calls(), nil, "ec2"), w.sqsSince(sqsBefore)
	if nb != nil {
		ec2Calls = minus(ec2Calls, nb.calls) // snapfleet's own calls only
	}
	fmt.Fprintf(os.Stderr, "bench: %s calls of plan + work: EC2 %v + %v, SQS %v + %v; workers' summary %v\n", sc.name,
		planEC2, minus(ec2Calls, planEC2), planSQS, minus(sqsCalls, planSQS), work)

	// η per bucket over the window W (BENCHMARKS.md).
	stats := ep.Limiter.Stats()
	lim := awslimits.DefaultLimits()[awslimits.BucketCreateSnapshot]
	window := 10 * time.Second
	for _, s := range sc.scopes {
		// With a neighbour, snapfleet's share of the refill is what the neighbour leaves.
		if ideal := time.Duration(float64(s.volumes-int(lim.Burst)) / (lim.Refill - sc.neighbour) * float64(time.Second)); ideal > window {
			window = ideal
		}
	}
	doneBy := ep.DoneBy(t0.Add(window))
	done := ep.Done()
	worst := map[string]string{}
	var createRate string // creates per second done by t0+W, and what the buckets allowed
	eta := func(action string) (float64, float64) {
		minEta, sumDone, sumAllowed := math.Inf(1), 0.0, 0.0
		for _, s := range sc.scopes {
			allowed := lim.Ceiling(s.volumes, t0, t0.Add(window))
			d := float64(doneBy[awslimits.Done{Account: s.account, Region: s.region, Action: action}])
			if action == "CreateSnapshot" && nb != nil {
				// What the neighbour took is neither snapfleet's nor allowed to it.
				took := float64(nb.createdBy(t0.Add(window)))
				d -= took
				allowed = math.Min(float64(s.volumes), lim.Burst+lim.Refill*window.Seconds()-took)
			}
			d = math.Min(d, allowed)
			if d/allowed < minEta {
				minEta = d / allowed
				worst[action] = fmt.Sprintf("%s/%s %.0f of %.0f", s.account, s.region, d, allowed)
			}
			sumDone += d
			sumAllowed += allowed
		}
		if action == "CreateSnapshot" {
			createRate = fmt.Sprintf("%.1f / %.1f", sumDone/window.Seconds(), sumAllowed/window.Seconds())
		}
		return minEta, sumDone / sumAllowed
	}
	var last time.Time
	for _, st := range stats {
		if !strings.HasPrefix(st.Bucket, "Describe") && st.Last.After(last) {
			last = st.Last
		}
	}
	throttled := map[string]int{}
	perVolume := 0
	for _, st := range stats {
		throttled[st.Bucket] += st.Throttled
		if strings.HasPrefix(st.Bucket, "Describe") {
			throttled["Describe*"] += st.Throttled
		}
		perVolume += st.PerVolume
	}
	dup, err := w.duplicates(ctx, sc.scopes)
	if err != nil {
		return row{}, err
	}
	dl, err := sqs.NewFromConfig(base(w.endpoint, mototest.Region)).GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(dlq), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		return row{}, err
	}
	creates, deletes := 0, 0
	for _, s := range sc.scopes {
		creates += s.volumes
		if sc.deletes {
			deletes += s.volumes
		}
		if got := done[awslimits.Done{Account: s.account, Region: s.region, Action: "CreateSnapshot"}] - nb.createdBy(time.Now()); got != s.volumes {
			fmt.Fprintf(os.Stderr, "bench: %s %s/%s: %d CreateSnapshot took effect, want %d\n", sc.name, s.account, s.region, got, s.volumes)
		}
	}
	if n := jsonInt(plan["snapshot_jobs"]); n != creates {
		fmt.Fprintf(os.Stderr, "bench: %s: plan made %d snapshot jobs, the fleet has %d volumes\n", sc.name, n, creates)
	}
	if n := jsonInt(plan["delete_jobs"]); n != deletes {
		fmt.Fprintf(os.Stderr, "bench: %s: plan made %d delete jobs, want %d\n", sc.name, n, deletes)
	}
	ec, ea := eta("CreateSnapshot")
	etaDel := "—"
	if sc.deletes {
		dm, da := eta("DeleteSnapshot")
		etaDel = fmt.Sprintf("%.2f / %.2f", dm, da)
	}
	diagnose(sc, ep, t0, window)
	if nb != nil {
		fmt.Fprintf(os.Stderr, "bench: %s: the neighbour's calls %v, failed %v; %d creates by t0+W\n", sc.name, nb.calls, nb.throttled, nb.createdBy(t0.Add(window)))
	}
	for a, w := range worst {
		fmt.Fprintf(os.Stderr, "bench: %s: lowest η %s: %s done by t0+W\n", sc.name, a, w)
	}
	assumes := 0
	for _, v := range ep.AssumeRoles() {
		assumes += v
	}
	return row{name: sc.name, scopes: len(sc.scopes), creates: creates, deletes: deletes, workers: sc.workers,
		ideal: window.Seconds(), done: last.Sub(t0).Seconds(), doneFromPlan: last.Sub(tPlan).Seconds(),
		etaCreate: fmt.Sprintf("%.2f / %.2f", ec, ea), etaDelete: etaDel, rate: createRate,
		throttled: [3]int{throttled[awslimits.BucketCreateSnapshot], throttled[awslimits.BucketDeleteSnapshot], throttled["Describe*"]},
		perVolume: perVolume, dlq: dl.Attributes["ApproximateNumberOfMessages"], deadLettered: work["dead_lettered"],
		dup: dup, assumes: assumes, planSeconds: pr.wall.Seconds(), planMiB: float64(pr.maxRSS) / 1024,
		ec2Calls: ec2Calls, sqsCalls: sqsCalls, cpu: [3]time.Duration{workCPU, benchCPU, pr.cpu}}, nil
}

func jsonInt(v any) int {
	f, _ := v.(float64)
	return int(f)
}

// seedManaged gives every volume of sc a snapshot started at at, tagged as the default
// policy's snapshot of that period.
func (w *world) seedManaged(sc scenario, at time.Time) {
	for _, s := range sc.scopes {
		for _, vol := range w.volumes[s] {
			w.sim.AddSnapshot(s.account, s.region, vol, at, map[string]string{
				tag.Policy: config.DefaultPolicyName, tag.Volume: vol, tag.AutoBackup: "true",
				tag.Job: job.CreateKey(s.account, s.region, vol, config.DefaultPolicyName, at.Truncate(24*time.Hour))})
		}
	}
}

// duplicates counts snapshots beyond the first carrying the same snapfleet:job tag.
func (w *world) duplicates(ctx context.Context, scopes []scope) (int, error) {
	n := 0
	if w.sim != nil {
		for _, s := range scopes {
			seen := map[string]bool{}
			for _, sn := range w.sim.Snapshots(s.account, s.region) {
				if k := sn.Tags[tag.Job]; k != "" {
					if seen[k] {
						n++
					}
					seen[k] = true
				}
			}
		}
		return n, nil
	}
	for _, s := range scopes {
		out, err := ec2In(w.endpoint, s.account, s.region).DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{
			OwnerIds: []string{"self"}, Filters: []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{"snapfleet:job"}}}})
		if err != nil {
			return 0, fmt.Errorf("listing snapshots of %s/%s: %w", s.account, s.region, err)
		}
		seen := map[string]bool{}
		for _, sn := range out.Snapshots {
			for _, t := range sn.Tags {
				if aws.ToString(t.Key) == "snapfleet:job" {
					if seen[aws.ToString(t.Value)] {
						n++
					}
					seen[aws.ToString(t.Value)] = true
				}
			}
		}
	}
	return n, nil
}
