// Package lambda serves snapfleet as AWS Lambda functions: the planner, invoked by
// EventBridge Scheduler (or by hand with an empty event), plans onto the jobs queue and
// returns the summary; the worker, fed by an SQS event source mapping, handles each record
// of a batch like the long-running worker and reports only the records to retry, and the
// poison ones it dead-lettered, as batch item failures (ReportBatchItemFailures), so one
// bad message never redoes the batch.
//
// Settings come from the function's environment (FromEnv): SNAPFLEET_LAMBDA=plan|work,
// the config from SNAPFLEET_CONFIG (a path) or SNAPFLEET_CONFIG_YAML (inline), the queue
// from SNAPFLEET_QUEUE. AWS endpoints, region and credentials come from the SDK's
// standard sources, as everywhere in snapfleet.
package lambda

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/middleware"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/internal/cloud"
	"github.com/snapfleet/snapfleet/internal/config"
	"github.com/snapfleet/snapfleet/internal/event"
	"github.com/snapfleet/snapfleet/planner"
	"github.com/snapfleet/snapfleet/queue"
	"github.com/snapfleet/snapfleet/worker"
)

// Modes of SNAPFLEET_LAMBDA.
const (
	ModePlan = "plan"
	ModeWork = "work"
)

// Environment variables FromEnv reads.
const (
	EnvMode       = "SNAPFLEET_LAMBDA"
	EnvConfig     = "SNAPFLEET_CONFIG"
	EnvConfigYAML = "SNAPFLEET_CONFIG_YAML"
	EnvQueue      = "SNAPFLEET_QUEUE"
	EnvNow        = "SNAPFLEET_NOW"
	// EnvAllowClockSkew=true is --allow-clock-skew: deletes go on whatever AWS's clock says.
	EnvAllowClockSkew = "SNAPFLEET_ALLOW_CLOCK_SKEW"
	EnvConcurrency    = "SNAPFLEET_CONCURRENCY"
	EnvVisibility     = "SNAPFLEET_VISIBILITY"
	EnvLogLevel       = "SNAPFLEET_LOG_LEVEL"
)

// Settings configure the handlers.
type Settings struct {
	// Mode is ModePlan or ModeWork.
	Mode   string
	Config *config.Config
	// Queue is the jobs queue URL (SQS, or file:PATH in tests).
	Queue string
	// Now replaces the clock (tests, and parity with --now); zero means the real clock.
	Now time.Time
	// AllowClockSkew turns off the worker's check of its clock against AWS's before a
	// delete (parity with --allow-clock-skew).
	AllowClockSkew bool
	// Concurrency is how many records of a batch run at once; default 10 (a full batch).
	Concurrency int
	// Visibility is what the worker's heartbeat extends a running job's message to;
	// default 30s.
	Visibility time.Duration
	// AWS is the SDK configuration.
	AWS aws.Config
	// APIOptions are added to every AWS client: tests inject faults with them.
	APIOptions []func(*middleware.Stack) error
	Log        zerolog.Logger
}

// FromEnv reads Settings from getenv (os.Getenv in the function). The error names the
// variable that is wrong.
func FromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{Mode: getenv(EnvMode), Queue: getenv(EnvQueue)}
	switch s.Mode {
	case ModePlan, ModeWork:
	case "":
		return s, fmt.Errorf("%s is not set: want plan or work", EnvMode)
	default:
		return s, fmt.Errorf("%s=%q: want plan or work", EnvMode, s.Mode)
	}
	if s.Queue == "" {
		return s, fmt.Errorf("%s is not set: want the jobs queue URL", EnvQueue)
	}
	path, inline := getenv(EnvConfig), getenv(EnvConfigYAML)
	var err error
	switch {
	case path != "" && inline != "":
		return s, fmt.Errorf("both %s and %s are set: use one", EnvConfig, EnvConfigYAML)
	case inline != "":
		s.Config, err = config.Parse(strings.NewReader(inline))
		if err != nil {
			return s, fmt.Errorf("%s: %w", EnvConfigYAML, err)
		}
	default:
		s.Config, err = config.Load(path) // "" is the built-in policy
		if err != nil {
			return s, fmt.Errorf("%s: %w", EnvConfig, err)
		}
	}
	if v := getenv(EnvNow); v != "" {
		if s.Now, err = config.ParseClock(v); err != nil {
			return s, fmt.Errorf("%s=%q: %w", EnvNow, v, err)
		}
	}
	if v := getenv(EnvAllowClockSkew); v != "" {
		if s.AllowClockSkew, err = strconv.ParseBool(v); err != nil {
			return s, fmt.Errorf("%s=%q: not true or false", EnvAllowClockSkew, v)
		}
	}
	if v := getenv(EnvConcurrency); v != "" {
		if s.Concurrency, err = strconv.Atoi(v); err != nil || s.Concurrency < 1 || s.Concurrency > 256 {
			return s, fmt.Errorf("%s=%q: not a number between 1 and 256", EnvConcurrency, v)
		}
	}
	if v := getenv(EnvVisibility); v != "" {
		if s.Visibility, err = time.ParseDuration(v); err != nil || s.Visibility < time.Second || s.Visibility > 12*time.Hour {
			return s, fmt.Errorf("%s=%q: not a duration between 1s and 12h", EnvVisibility, v)
		}
	}
	lvl := zerolog.InfoLevel
	if v := getenv(EnvLogLevel); v != "" {
		if lvl, err = zerolog.ParseLevel(v); err != nil {
			return s, fmt.Errorf("%s=%q: not a level (debug, info, warn, error)", EnvLogLevel, v)
		}
	}
	s.Log = zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Logger()
	return s, nil
}

// Function is one Lambda function: the planner's or the worker's handler, with the
// clients and the queue it keeps between invocations.
type Function struct {
	s       Settings
	clients *cloud.Clients
	q       queue.Queue
	// pub publishes outcome events to events.bus; nil when it is not set.
	pub *event.Publisher
}

// New opens the queue and builds the AWS clients of s.
func New(ctx context.Context, s Settings) (*Function, error) {
	if s.Config == nil {
		return nil, errors.New("lambda: Settings.Config is nil")
	}
	switch s.Mode {
	case ModePlan, ModeWork:
	default:
		return nil, fmt.Errorf("lambda: mode %q: want plan or work", s.Mode)
	}
	clients := cloud.NewClients(s.AWS, s.Config)
	clients.APIOptions = s.APIOptions
	cfg := s.AWS.Copy()
	cfg.APIOptions = append(cfg.APIOptions, s.APIOptions...)
	q, err := queue.Open(ctx, s.Queue, queue.Options{AWS: cfg})
	if err != nil {
		return nil, fmt.Errorf("opening queue %s: %w", s.Queue, err)
	}
	return &Function{s: s, clients: clients, q: q, pub: event.NewPublisher(cfg, s.Config.Events.Bus)}, nil
}

// Close closes the queue.
func (f *Function) Close() error { return f.q.Close() }

// Handler is the function's handler for lambda.Start: Plan or Work by mode.
func (f *Function) Handler() any {
	if f.s.Mode == ModePlan {
		return f.Plan
	}
	return f.Work
}

// Trigger is what invoked the planner, read from an EventBridge event envelope (a
// Scheduler target input or a rule's event). An empty or null payload, or {}, is a manual
// run.
type Trigger struct {
	ID         string          `json:"id,omitempty"`
	Source     string          `json:"source,omitempty"`
	DetailType string          `json:"detail-type,omitempty"`
	Time       string          `json:"time,omitempty"`
	Detail     json.RawMessage `json:"detail,omitempty"`
}

// Kinds of trigger the planner serves.
const (
	// TriggerManual: an empty event (a console test, `aws lambda invoke`).
	TriggerManual = "manual"
	// TriggerSchedule: EventBridge Scheduler with the input of deploy/hub.yaml, or a
	// classic EventBridge schedule rule ("Scheduled Event").
	TriggerSchedule = "schedule"
	// TriggerEvent: an EC2 instance state-change notification (the deploy/hub.yaml rule) or
	// a snapfleet.BackupNow event: planned by planner.PlanEvent, snapshots only.
	TriggerEvent = "event"
)

// Kind says which planning a trigger asks for, by detail-type. Events not understood are
// refused with an error naming them rather than planned as a full run.
func (t Trigger) Kind() (string, error) {
	switch {
	case t.Source == "" && t.DetailType == "":
		return TriggerManual, nil
	case t.DetailType == "Scheduled Event", t.Source == "aws.scheduler":
		return TriggerSchedule, nil
	case event.Handles(t.DetailType):
		return TriggerEvent, nil
	default:
		return "", fmt.Errorf("event source %q detail-type %q: the planner does not handle it", t.Source, t.DetailType)
	}
}

// ParseTrigger decodes the planner's invocation payload.
func ParseTrigger(payload []byte) (Trigger, error) {
	var t Trigger
	p := bytes.TrimSpace(payload)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		return t, nil
	}
	if err := json.Unmarshal(p, &t); err != nil {
		return t, fmt.Errorf("reading the planner's event: %w", err)
	}
	return t, nil
}

// Plan plans every configured account and region onto the queue and returns the summary
// (the JSON of `snapfleet plan --output json`). An account-region that could not be
// planned is in the summary's errors; the invocation still succeeds, so that EventBridge
// does not re-run the whole plan: the DLQ-depth and error alarms of deploy/ tell.
func (f *Function) Plan(ctx context.Context, payload json.RawMessage) (planner.Summary, error) {
	t, err := ParseTrigger(payload)
	if err != nil {
		return planner.Summary{}, err
	}
	kind, err := t.Kind()
	if err != nil {
		return planner.Summary{}, err
	}
	accounts, regions, err := f.clients.Targets(ctx, f.s.Config.Regions)
	if err != nil {
		return planner.Summary{}, err
	}
	var ev event.Event
	if kind == TriggerEvent {
		if ev, err = event.Parse(payload); err != nil {
			// Retrying cannot help, but only a failed invocation keeps the event: after
			// Lambda's retries of the asynchronous call it goes, with this error, to the
			// planner's on-failure destination (deploy/hub.yaml's events dead-letter queue).
			return planner.Summary{}, fmt.Errorf("planning the event: %w", err)
		}
	}
	now := f.s.Now
	if now.IsZero() {
		now = time.Now()
	}
	p := &planner.Planner{
		Config:   f.s.Config,
		Accounts: accounts,
		Regions:  regions,
		EC2:      func(account, region string) planner.EC2 { return f.clients.EC2(account, region) },
		Queue:    f.q,
		Now:      now,
		RunID:    planner.NewRunID(now),
		Log:      f.s.Log.With().Str("trigger", kind).Str("event", t.ID).Logger(),
	}
	var s planner.Summary
	if kind == TriggerEvent {
		s, err = p.PlanEvent(ctx, ev)
	} else {
		s, err = p.Plan(ctx)
	}
	if err != nil {
		return s, fmt.Errorf("planning: %w", err)
	}
	out := s
	out.Decisions = nil
	if err := f.pub.Publish(ctx, event.Outcome{DetailType: event.DetailPlanSummary, Detail: out}); err != nil {
		f.s.Log.Error().Err(err).Str("run", s.RunID).Msg("publishing the plan summary")
	}
	return s, nil
}

// Work handles one SQS batch. Each record is decoded and run through the worker's
// handlers (with events.bus set, each dead letter is published as snapfleet.JobFailed and
// the batch's counts as one snapfleet.WorkSummary); the response lists as batch item failures only the records to deliver again:
// throttled (hidden for the throttling code's wait first) or otherwise retryable jobs. A
// poison record — an invalid message, an unknown account or policy, a refused delete — is
// sent to the dead-letter queue with its reason and reported done, so it is neither
// retried nor held up with the batch. Records of another queue than SNAPFLEET_QUEUE are
// an error for the whole batch: the function is wired to the wrong queue.
func (f *Function) Work(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	msgs := make([]queue.Message, 0, len(ev.Records))
	for _, r := range ev.Records {
		if err := f.sameQueue(r.EventSourceARN); err != nil {
			return events.SQSEventResponse{}, err
		}
		msgs = append(msgs, message(r))
	}
	now := time.Now
	if !f.s.Now.IsZero() {
		fixed := f.s.Now
		now = func() time.Time { return fixed }
	}
	conc := f.s.Concurrency
	if conc <= 0 {
		conc = 10
	}
	awsNow := f.clients.AWSNow
	if f.s.AllowClockSkew {
		awsNow = nil
	}
	w := &worker.Worker{
		AWSNow:       awsNow,
		Queue:        event.PublishFailures(f.q, f.pub, f.s.Log),
		Config:       f.s.Config,
		EC2:          func(account, region string) worker.EC2 { return f.clients.EC2(account, region) },
		KnownAccount: f.clients.Known,
		Now:          now,
		Concurrency:  conc,
		Limiter:      f.clients.Limiter,
		Visibility:   f.s.Visibility,
		Log:          f.s.Log,
	}
	res, err := w.HandleBatch(ctx, msgs)
	if err != nil {
		return events.SQSEventResponse{}, fmt.Errorf("handling a batch of %d messages: %w", len(msgs), err)
	}
	f.pub.PublishDetached(ctx, f.s.Log, event.Outcome{DetailType: event.DetailWorkSummary, Detail: res.Stats})
	// Retried records, and poison ones: those are in the dead-letter queue with their
	// reason already (gone from this queue, so not retried), and reported failed so that
	// the invocation's metrics see them.
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, id := range append(res.Retry, res.DeadLettered...) {
		resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	return resp, nil
}

// message is the queue message of an SQS event record.
func message(r events.SQSMessage) queue.Message {
	m := queue.Message{ID: r.MessageId, Receipt: r.ReceiptHandle, Body: []byte(r.Body)}
	m.Attempts, _ = strconv.Atoi(r.Attributes["ApproximateReceiveCount"])
	m.GroupID = r.Attributes["MessageGroupId"]
	if ms, err := strconv.ParseInt(r.Attributes["SentTimestamp"], 10, 64); err == nil {
		m.SentAt = time.UnixMilli(ms).UTC()
	}
	if ms, err := strconv.ParseInt(r.Attributes["ApproximateFirstReceiveTimestamp"], 10, 64); err == nil {
		m.FirstReceivedAt = time.UnixMilli(ms).UTC()
	}
	return m
}

// sameQueue checks that an event source ARN (arn:PARTITION:sqs:REGION:ACCOUNT:NAME) names
// the queue of SNAPFLEET_QUEUE (…/ACCOUNT/NAME). Only SQS URLs are checked.
func (f *Function) sameQueue(arn string) error {
	if arn == "" || !strings.HasPrefix(f.s.Queue, "http") {
		return nil
	}
	a := strings.Split(arn, ":")
	u := strings.Split(strings.TrimRight(f.s.Queue, "/"), "/")
	if len(a) == 6 && len(u) >= 2 && a[4] == u[len(u)-2] && a[5] == u[len(u)-1] {
		return nil
	}
	return fmt.Errorf("record from %s, but %s is %s: the event source mapping and the function's queue differ", arn, EnvQueue, f.s.Queue)
}
