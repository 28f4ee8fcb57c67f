package planner

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/queue"
)

// scopeRun is the planning of one account-region, scheduled or for an event: its log and
// what went wrong in it.
type scopeRun struct {
	account, region string
	log             zerolog.Logger
	failures        []Failure
}

func newScopeRun(log zerolog.Logger, account, region string) *scopeRun {
	return &scopeRun{account: account, region: region, log: log.With().Str("account", account).Str("region", region).Logger()}
}

// fail records one thing that went wrong; the account-region goes on with the rest.
func (sc *scopeRun) fail(err error) {
	sc.log.Error().Err(err).Msg("planning failed")
	sc.failures = append(sc.failures, Failure{Account: sc.account, Region: sc.region, Error: err.Error()})
}

// send enqueues msgs sendBatch at a time and returns how many were sent; a failed Send is
// recorded and ends the sending (the next plan enqueues the rest).
func (p *Planner) send(ctx context.Context, sc *scopeRun, msgs []queue.Outgoing) int {
	sent := 0
	for len(msgs) > 0 {
		n := min(sendBatch, len(msgs))
		if err := p.Queue.Send(ctx, msgs[:n]); err != nil {
			sc.fail(fmt.Errorf("enqueuing jobs of %s/%s (%d of %d sent): %w", sc.account, sc.region, sent, sent+len(msgs), err))
			break
		}
		sent += n
		msgs = msgs[n:]
	}
	return sent
}

// describeInstances pages through DescribeInstances.
func describeInstances(ctx context.Context, client ec2.DescribeInstancesAPIClient, in *ec2.DescribeInstancesInput) ([]Instance, error) {
	var out []Instance
	pages := ec2.NewDescribeInstancesPaginator(client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describing instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				out = append(out, instanceOf(i))
			}
		}
	}
	return out, nil
}
