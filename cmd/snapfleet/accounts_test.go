package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"

	"github.com/snapfleet/snapfleet/internal/job"
	"github.com/snapfleet/snapfleet/internal/tag"
	testfleet "github.com/snapfleet/snapfleet/internal/testbed/fleet"
	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
	"github.com/snapfleet/snapfleet/queue"
)

var (
	fleetAccounts = []string{"111111111111", "222222222222", "333333333333"}
	fleetRegions  = []string{"us-east-1", "eu-west-1"}
)

// stsProxy sits in front of moto's STS: it counts AssumeRole calls by role and answers
// AccessDenied for the denied roles (moto lets anyone assume any role).
type stsProxy struct {
	URL    string
	mu     sync.Mutex
	assume map[string]int
	denied map[string]bool
}

func startSTSProxy(t *testing.T, target string, denied ...string) *stsProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &stsProxy{assume: map[string]int{}, denied: map[string]bool{}}
	for _, r := range denied {
		p.denied[r] = true
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		if form.Get("Action") == "AssumeRole" {
			role := form.Get("RoleArn")
			p.mu.Lock()
			p.assume[role]++
			deny := p.denied[role]
			p.mu.Unlock()
			if deny {
				w.Header().Set("Content-Type", "text/xml")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole on resource: %s</Message></Error><RequestId>test</RequestId></ErrorResponse>`, role)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *stsProxy) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return copyCounts(p.assume)
}

func copyCounts(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// fleetWorld is a moto server with volumes in several accounts and regions, and STS
// behind a proxy for the snapfleet processes.
type fleetWorld struct {
	*e2e
	sts     *stsProxy
	volumes map[string][]string // "account/region" → volume ids
}

func newFleetWorld(t *testing.T, cfgYAML string, denied ...string) *fleetWorld {
	t.Helper()
	e := newE2E(t)
	e.setConfig(cfgYAML)
	w := &fleetWorld{e2e: e, sts: startSTSProxy(t, e.moto.Endpoint, denied...), volumes: map[string][]string{}}
	e.env = append(e.env, "AWS_ENDPOINT_URL_STS="+w.sts.URL)
	return w
}

// build runs n instances (a root volume each) in every account-region, through the role.
func (w *fleetWorld) build(ctx context.Context, n int) {
	for _, a := range fleetAccounts {
		for _, r := range fleetRegions {
			for _, in := range w.fleet.In(a, r).Instances(ctx, n, 0, nil) {
				w.volumes[a+"/"+r] = append(w.volumes[a+"/"+r], in.Root)
			}
		}
	}
}

// jsonCLI runs a command with --output json and the world's config, wants exit code want,
// and decodes stdout into v.
func (w *fleetWorld) jsonCLI(want int, v any, args ...string) {
	w.t.Helper()
	w.runInto(want, v, append(args, "--config", w.config)...)
}

// managed returns the volumes of the snapshots snapfleet made in an account-region,
// failing on a snapshot owned by another account.
func (w *fleetWorld) managed(ctx context.Context, account, region string) []string {
	t := w.t
	t.Helper()
	out, err := w.fleet.In(account, region).EC2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{account}})
	if err != nil {
		t.Fatal(err)
	}
	var vols []string
	for _, s := range out.Snapshots {
		if _, ok := tagsOf(s)[tag.Policy]; !ok {
			continue
		}
		if aws.ToString(s.OwnerId) != account {
			t.Errorf("%s/%s: snapshot %s owned by %s", account, region, aws.ToString(s.SnapshotId), aws.ToString(s.OwnerId))
		}
		vols = append(vols, aws.ToString(s.VolumeId))
	}
	slices.Sort(vols)
	return vols
}

type planJSON struct {
	Errors   int `json:"errors"`
	Enqueued int `json:"enqueued"`
	Failures []struct {
		Account, Region, Error string
	} `json:"failures"`
	Scopes []struct {
		Account string `json:"account"`
		Region  string `json:"region"`
		Creates int    `json:"creates"`
	} `json:"scopes"`
}

func fleetConfig(accounts []string) string {
	var b strings.Builder
	b.WriteString("regions: [us-east-1, eu-west-1]\naccounts:\n")
	for _, a := range accounts {
		fmt.Fprintf(&b, "  - {id: %q, role_arn: %q, external_id: ext}\n", a, testfleet.Role(a))
	}
	b.WriteString("policies:\n  - name: daily\n    every: 24h\n    retain: {max_age: 7d, min_keep: 1}\n")
	return b.String()
}

// TestAccountsAcrossTheFleet: three accounts behind roles × two regions. Every volume of
// every account-region gets its snapshot in its own account; one AssumeRole per account
// per process; a job naming an account the worker does not know is dead-lettered.
func TestAccountsAcrossTheFleet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newFleetWorld(t, fleetConfig(fleetAccounts))
	w.build(ctx, 2)
	qURL := "file:" + filepath.Join(t.TempDir(), "jobs.db")

	var sum planJSON
	w.jsonCLI(0, &sum, "plan", "--queue", qURL)
	if sum.Errors != 0 || sum.Enqueued != 12 || len(sum.Scopes) != 6 {
		t.Fatalf("plan: %+v, want 12 jobs over 6 account-regions", sum)
	}
	for _, sc := range sum.Scopes {
		if sc.Creates != 2 {
			t.Errorf("scope %s/%s: %d creates, want 2", sc.Account, sc.Region, sc.Creates)
		}
	}
	for _, a := range fleetAccounts {
		if n := w.sts.counts()[testfleet.Role(a)]; n != 1 {
			t.Errorf("plan assumed %s %d times, want once for both regions", testfleet.Role(a), n)
		}
	}

	// A job for an account that is in no config: the planner would never make it, a
	// stale or forged message would.
	stranger := "444444444444"
	q, err := queue.Open(ctx, qURL, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	period := time.Now().UTC().Truncate(24 * time.Hour)
	body, err := job.Encode(job.Job{V: 1, Kind: job.KindCreate, Key: job.CreateKey(stranger, "us-east-1", "vol-0123456789abcdef0", "daily", period),
		Account: stranger, Region: "us-east-1", Policy: "daily", Volume: "vol-0123456789abcdef0",
		Instance: "i-0123456789abcdef0", Device: "/dev/xvda", Run: "run-test", PlannedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, []queue.Outgoing{{Body: body}}); err != nil {
		t.Fatal(err)
	}

	before := w.sts.counts()
	var st map[string]int
	w.jsonCLI(0, &st, "work", "--queue", qURL, "--idle-exit", "2s", "--visibility", "5s", "--concurrency", "8")
	if st["created"] != 12 || st["dead_lettered"] != 1 {
		t.Errorf("worker stats %v, want 12 created and 1 dead-lettered", st)
	}
	after := w.sts.counts()
	for _, a := range fleetAccounts {
		if n := after[testfleet.Role(a)] - before[testfleet.Role(a)]; n != 1 {
			t.Errorf("worker assumed %s %d times for 4 jobs in 2 regions, want once", testfleet.Role(a), n)
		}
	}
	if after[testfleet.Role(stranger)] != 0 {
		t.Errorf("worker assumed a role in the unknown account %s", stranger)
	}

	dlq, err := q.DLQ(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := dlq.Receive(ctx, 10, time.Second)
	if err != nil || len(msgs) != 1 || msgs[0].Reason != "unknown_account" || !bytes.Equal(msgs[0].Body, body) {
		t.Fatalf("dead letters %+v, %v; want the stranger's job with reason unknown_account", msgs, err)
	}
	q.Close()

	for _, a := range fleetAccounts {
		for _, r := range fleetRegions {
			want := slices.Sorted(slices.Values(w.volumes[a+"/"+r]))
			if got := w.managed(ctx, a, r); !slices.Equal(got, want) {
				t.Errorf("%s/%s: snapshots of %v, want one of each of its own volumes %v", a, r, got, want)
			}
		}
	}
}

// TestAccountRoleDenied: one account's role cannot be assumed. The plan covers the others,
// names the account in its failures and exits 1; the workers complete the others' jobs.
func TestAccountRoleDenied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bad := fleetAccounts[2]
	w := newFleetWorld(t, fleetConfig(fleetAccounts), testfleet.Role(bad))
	w.build(ctx, 1) // built by the test's own clients, which go to moto directly
	qURL := "file:" + filepath.Join(t.TempDir(), "jobs.db")

	var sum planJSON
	w.jsonCLI(1, &sum, "plan", "--queue", qURL)
	if sum.Errors == 0 || sum.Errors != len(sum.Failures) || sum.Enqueued != 4 {
		t.Fatalf("plan: %+v, want 4 jobs and failures in both regions of %s", sum, bad)
	}
	failed := map[string]bool{}
	for _, f := range sum.Failures {
		if f.Account != bad || !strings.Contains(f.Error, "AccessDenied") {
			t.Errorf("failure %+v, want %s with AccessDenied", f, bad)
		}
		failed[f.Region] = true
	}
	if len(failed) != len(fleetRegions) {
		t.Errorf("failed regions %v, want all of %v", failed, fleetRegions)
	}
	var st map[string]int
	w.jsonCLI(0, &st, "work", "--queue", qURL, "--idle-exit", "2s", "--visibility", "5s")
	if st["created"] != 4 || st["dead_lettered"] != 0 {
		t.Errorf("worker stats %v, want 4 created", st)
	}
	for _, a := range fleetAccounts[:2] {
		for _, r := range fleetRegions {
			if got := w.managed(ctx, a, r); !slices.Equal(got, w.volumes[a+"/"+r]) {
				t.Errorf("%s/%s: snapshots of %v, want %v", a, r, got, w.volumes[a+"/"+r])
			}
		}
	}
	for _, r := range fleetRegions {
		if got := w.managed(ctx, bad, r); len(got) != 0 {
			t.Errorf("%s/%s: snapshots %v in the account whose role is denied", bad, r, got)
		}
	}
}

// TestOrganizationDiscoveryPlan: accounts: {organization: ...} plans every account of the
// organization but the excluded ones, through the organization's role name.
func TestOrganizationDiscoveryPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := mototest.Start(t)
	base := s.AWSConfig(t)
	org := organizations.NewFromConfig(base)
	if _, err := org.CreateOrganization(ctx, &organizations.CreateOrganizationInput{FeatureSet: orgtypes.OrganizationFeatureSetAll}); err != nil {
		t.Fatal(err)
	}
	var members []string
	for i := range 3 {
		out, err := org.CreateAccount(ctx, &organizations.CreateAccountInput{
			AccountName: aws.String(fmt.Sprintf("member-%d", i)), Email: aws.String(fmt.Sprintf("m%d@example.com", i))})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, aws.ToString(out.CreateAccountStatus.AccountId))
	}
	excluded := members[1]
	cfgYAML := fmt.Sprintf(`regions: [us-east-1]
accounts:
  organization:
    role_name: snapfleet-member
    external_id: ext
    exclude: [%q, %q]
policies:
  - name: daily
    retain: {max_age: 7d}
`, excluded, mototest.Account)
	path := filepath.Join(t.TempDir(), "snapfleet.yaml")
	if err := os.WriteFile(path, []byte(cfgYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	// One running instance in each member account, made through a role of the account.
	for _, a := range members {
		testfleet.New(t, s).In(a, "us-east-1").Instances(ctx, 1, 0, nil)
	}
	e := &e2e{t: t, moto: s, config: path}
	m := e.jsonCLI(0, "plan", "--dry-run")
	var got []string
	for _, sc := range m["scopes"].([]any) {
		sc := sc.(map[string]any)
		got = append(got, sc["account"].(string))
		if sc["creates"].(float64) != 1 {
			t.Errorf("scope %v: want one create", sc)
		}
	}
	want := slices.Sorted(slices.Values([]string{members[0], members[2]}))
	if !slices.Equal(got, want) {
		t.Errorf("planned accounts %v, want the organization's %v less %s and the management account", got, want, excluded)
	}
}

// TestAccountWithoutRoleMustBeCaller: `accounts: [{id: "801119661308"}]` while the
// credentials are moto's 123456789012. Planned, the caller's volumes would be snapshotted
// under the other account's keys, and its owner checks made against the wrong account:
// plan, plan --event, run and work exit 2 with one line naming both accounts, before any
// job is enqueued or worked and before any EC2 call that changes anything.
func TestAccountWithoutRoleMustBeCaller(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const stranger = "801119661308"
	e := newE2E(t)
	ids, vols := e.instancesWithData(ctx, 1, map[string]string{"App": "shop"})
	vol := vols[ids[0]][0]
	e.config = writeFile(t, "stranger.yaml", fmt.Sprintf(`regions: [%s]
accounts:
  - id: %q
policies:
  - name: daily
    every: 24h
    retain: {max_age: 7d, min_keep: 1}
`, mototest.Region, stranger))
	before := e.snapshots(ctx)
	ev := writeFile(t, "backup.json", fmt.Sprintf(`{"version":"0","id":"ev-1","detail-type":"snapfleet.BackupNow",
"source":"release.pipeline","account":%q,"time":"2026-11-22T05:00:00Z","region":%q,"resources":[],
"detail":{"accounts":[%q],"regions":[%q],"tags":{"App":"shop"}}}`, stranger, mototest.Region, stranger, mototest.Region))

	// A forged job for the stranger, of the caller's volume, waits on the worker's queue.
	dir := t.TempDir()
	workQ := "file:" + filepath.Join(dir, "work.db")
	q, err := queue.Open(ctx, workQ, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	body, err := job.Encode(job.Job{V: 1, Kind: job.KindCreate, Key: job.CreateKey(stranger, mototest.Region, vol, "daily", time.Now().UTC().Truncate(24*time.Hour)),
		Account: stranger, Region: mototest.Region, Policy: "daily", Volume: vol,
		Instance: ids[0], Device: "/dev/xvda", Run: "run-test", PlannedAt: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send(ctx, []queue.Outgoing{{Body: body}}); err != nil {
		t.Fatal(err)
	}
	q.Close()

	for _, args := range [][]string{
		{"plan", "--queue", "file:" + filepath.Join(dir, "plan.db")},
		{"plan", "--queue", "file:" + filepath.Join(dir, "event.db"), "--event", ev},
		{"run", "--queue", "file:" + filepath.Join(dir, "run.db")},
		{"work", "--queue", workQ, "--idle-exit", "1s"},
	} {
		r := e.cli(append(args, "--config", e.config)...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != 2 || len(lines) != 1 || !strings.Contains(lines[0], stranger) || !strings.Contains(lines[0], motoAccount) || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q: want exit 2 and one line naming %s and %s", args[0], r.code, r.stdout, tail(r.stderr), stranger, motoAccount)
		}
	}
	for _, name := range []string{"plan.db", "event.db", "run.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("queue %s was opened (%v): nothing may be enqueued", name, err)
		}
	}
	q, err = queue.Open(ctx, workQ, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if st, err := q.Stats(ctx); err != nil || st.Visible != 1 {
		t.Errorf("work queue %+v, %v: want the forged job still there, unworked", st, err)
	}
	if after := e.snapshots(ctx); len(after) != len(before) {
		t.Errorf("%d snapshots before, %d after: want no change", len(before), len(after))
	}
}
