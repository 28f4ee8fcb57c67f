package event

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/job"
)

// Detail-types snapfleet publishes, with Source "snapfleet".
const (
	Source = "snapfleet"
	// DetailPlanSummary: a plan ended; the detail is its summary (plan --output json,
	// without the dry run's decisions).
	DetailPlanSummary = "snapfleet.PlanSummary"
	// DetailWorkSummary: a worker (or a Lambda batch) ended; the detail is its counts.
	DetailWorkSummary = "snapfleet.WorkSummary"
	// DetailJobFailed: a job went to the dead-letter queue; the detail is JobFailed.
	DetailJobFailed = "snapfleet.JobFailed"
)

// JobFailed is the detail of a DetailJobFailed event.
type JobFailed struct {
	Run      string `json:"run,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Key      string `json:"key,omitempty"`
	Account  string `json:"account,omitempty"`
	Region   string `json:"region,omitempty"`
	Volume   string `json:"volume,omitempty"`
	Snapshot string `json:"snapshot,omitempty"`
	Reason   string `json:"reason"`
	Error    string `json:"error"`
	Attempts int    `json:"attempts"`
	// Message is the job message as it was, when it could not be decoded.
	Message string `json:"message,omitempty"`
}

// Outcome is one event to publish.
type Outcome struct {
	DetailType string
	Detail     any
	// Resources are ARNs the event is about (optional).
	Resources []string
}

// PutEventsAPI is the EventBridge call the publisher makes.
type PutEventsAPI interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// putBatch is PutEvents' limit of entries per call.
const putBatch = 10

// Publisher puts outcome events on a bus. A nil *Publisher publishes nothing, so callers
// need not check whether events.bus is set.
type Publisher struct {
	API PutEventsAPI
	// Bus is the bus name or ARN.
	Bus string
	// Now stamps the events; nil means time.Now.
	Now func() time.Time
}

// NewPublisher returns a publisher on bus with a client of cfg, or nil when bus is empty.
func NewPublisher(cfg aws.Config, bus string) *Publisher {
	if bus == "" {
		return nil
	}
	return &Publisher{API: eventbridge.NewFromConfig(cfg), Bus: bus}
}

// Publish puts the outcomes, ten per PutEvents call. Entries EventBridge rejects make an
// error naming their codes; the others are published.
func (p *Publisher) Publish(ctx context.Context, outs ...Outcome) error {
	if p == nil || len(outs) == 0 {
		return nil
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	entries := make([]types.PutEventsRequestEntry, 0, len(outs))
	for _, o := range outs {
		b, err := json.Marshal(o.Detail)
		if err != nil {
			return fmt.Errorf("encoding the %s event: %w", o.DetailType, err)
		}
		entries = append(entries, types.PutEventsRequestEntry{
			EventBusName: aws.String(p.Bus),
			Source:       aws.String(Source),
			DetailType:   aws.String(o.DetailType),
			Detail:       aws.String(string(b)),
			Resources:    o.Resources,
			Time:         aws.Time(now()),
		})
	}
	var failed []string
	for len(entries) > 0 {
		n := min(putBatch, len(entries))
		out, err := p.API.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries[:n]})
		if err != nil {
			return fmt.Errorf("publishing %d events to bus %s: %w", n, p.Bus, err)
		}
		if out.FailedEntryCount > 0 {
			for i, e := range out.Entries {
				if e.ErrorCode != nil {
					failed = append(failed, fmt.Sprintf("%s: %s %s", aws.ToString(entries[i].DetailType), aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage)))
				}
			}
		}
		entries = entries[n:]
	}
	if len(failed) > 0 {
		return fmt.Errorf("publishing events to bus %s: %d rejected: %s", p.Bus, len(failed), strings.Join(failed, "; "))
	}
	return nil
}

// PublishDetached publishes one outcome even when ctx is already cancelled (a worker
// stopping on SIGTERM, a batch at its deadline), within 5 s, and logs a failure instead of
// returning it: the work it reports is done either way. A nil p publishes nothing.
func (p *Publisher) PublishDetached(ctx context.Context, log zerolog.Logger, o Outcome) {
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := p.Publish(ctx, o); err != nil {
		log.Error().Err(err).Str("detail_type", o.DetailType).Msg("publishing an outcome event")
	}
}

// Failed is the JobFailed detail of a dead-lettered message: the job's fields when it
// decodes, else the message itself (cut to 1 KiB).
func Failed(body []byte, attempts int, reason, lastErr string) JobFailed {
	f := JobFailed{Reason: reason, Error: lastErr, Attempts: attempts}
	j, err := job.Decode(body)
	if err != nil {
		if len(body) > job.MaxSize {
			body = body[:job.MaxSize]
		}
		f.Message = string(body)
		return f
	}
	f.Run, f.Kind, f.Key, f.Account, f.Region, f.Volume, f.Snapshot = j.Run, j.Kind, j.Key, j.Account, j.Region, j.Volume, j.Snapshot
	return f
}
