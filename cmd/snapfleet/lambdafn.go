// The Lambda entry points: the planner, invoked by EventBridge Scheduler (or by hand with
// an empty event), plans onto the jobs queue and returns the summary; the worker, fed by
// an SQS event source mapping, handles each record of a batch like the long-running
// worker and reports only the records to retry, and the poison ones it dead-lettered, as
// batch item failures (ReportBatchItemFailures), so one bad message never redoes the
// batch. Both are thin adapters: event in, summary out; the planner and the worker are
// built by wire.go as for the CLI.
//
// Settings come from the function's environment (lambdaFromEnv): SNAPFLEET_LAMBDA=plan|work,
// the config from SNAPFLEET_CONFIG (a path) or SNAPFLEET_CONFIG_YAML (inline), the queue
// from SNAPFLEET_QUEUE. AWS endpoints, region and credentials come from the SDK's
// standard sources, as everywhere in snapfleet.

package main

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
)

// Modes of SNAPFLEET_LAMBDA.
const (
	lambdaModePlan = "plan"
	lambdaModeWork = "work"
)

// Environment variables lambdaFromEnv reads.
const (
	envMode       = "SNAPFLEET_LAMBDA"
	envConfig     = "SNAPFLEET_CONFIG"
	envConfigYAML = "SNAPFLEET_CONFIG_YAML"
	envQueue      = "SNAPFLEET_QUEUE"
	envNow        = "SNAPFLEET_NOW"
	// envAllowClockSkew=true is --allow-clock-skew: deletes go on whatever AWS's clock says.
	envAllowClockSkew = "SNAPFLEET_ALLOW_CLOCK_SKEW"
	envConcurrency    = "SNAPFLEET_CONCURRENCY"
	envVisibility     = "SNAPFLEET_VISIBILITY"
	envLogLevel       = "SNAPFLEET_LOG_LEVEL"
)

// lambdaSettings configure the handlers.
type lambdaSettings struct {
	// Mode is lambdaModePlan or lambdaModeWork.
	Mode   string
	Config *config.Config
	// Queue is the jobs queue URL (SQS, or file:PATH in tests).
	Queue string
	// Now replaces the clock (tests, and parity with --now); zero means the real clock.
	Now time.Time
	// AllowClockSkew turns off the worker's check of its clock against AWS's before a
	// delete (parity with --allow-clock-skew).
	AllowClockSkew bool
	// Concurrency is how many records of a batch run at once (defaultBatchConcurrency).
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

// lambdaFromEnv reads lambdaSettings from getenv (os.Getenv in the function). The error names the
// variable that is wrong.
func lambdaFromEnv(getenv func(string) string) (lambdaSettings, error) {
	s := lambdaSettings{Mode: getenv(envMode), Queue: getenv(envQueue)}
	switch s.Mode {
	case lambdaModePlan, lambdaModeWork:
	case "":
		return s, fmt.Errorf("%s is not set: want plan or work", envMode)
	default:
		return s, fmt.Errorf("%s=%q: want plan or work", envMode, s.Mode)
	}
	if s.Queue == "" {
		return s, fmt.Errorf("%s is not set: want the jobs queue URL", envQueue)
	}
	path, inline := getenv(envConfig), getenv(envConfigYAML)
	var err error
	switch {
	case path != "" && inline != "":
		return s, fmt.Errorf("both %s and %s are set: use one", envConfig, envConfigYAML)
	case inline != "":
		s.Config, err = config.Parse(strings.NewReader(inline))
		if err != nil {
			return s, fmt.Errorf("%s: %w", envConfigYAML, err)
		}
	default:
		s.Config, err = config.Load(path) // "" is the built-in policy
		if err != nil {
			return s, fmt.Errorf("%s: %w", envConfig, err)
		}
	}
	if v := getenv(envNow); v != "" {
		if s.Now, err = config.ParseClock(v); err != nil {
			return s, fmt.Errorf("%s=%q: %w", envNow, v, err)
		}
	}
	if v := getenv(envAllowClockSkew); v != "" {
		if s.AllowClockSkew, err = strconv.ParseBool(v); err != nil {
			return s, fmt.Errorf("%s=%q: not true or false", envAllowClockSkew, v)
		}
	}
	if v := getenv(envConcurrency); v != "" {
		if s.Concurrency, err = strconv.Atoi(v); err != nil {
			return s, fmt.Errorf("%s=%q: not a number", envConcurrency, v)
		}
		if err := checkConcurrency(s.Concurrency); err != nil {
			return s, fmt.Errorf("%s=%q: %w", envConcurrency, v, err)
		}
	}
	if v := getenv(envVisibility); v != "" {
		if s.Visibility, err = time.ParseDuration(v); err != nil {
			return s, fmt.Errorf("%s=%q: not a duration", envVisibility, v)
		}
		if err := checkVisibility(s.Visibility); err != nil {
			return s, fmt.Errorf("%s=%q: %w", envVisibility, v, err)
		}
	}
	lvl := zerolog.InfoLevel
	if v := getenv(envLogLevel); v != "" {
		if lvl, err = zerolog.ParseLevel(v); err != nil {
			return s, fmt.Errorf("%s=%q: not a level (debug, info, warn, error)", envLogLevel, v)
		}
	}
	s.Log = zerolog.New(os.Stderr).Level(lvl).With().Timestamp().Logger()
	return s, nil
}

// lambdaFunction is one Lambda function: the planner's or the worker's handler, with the
// clients and the queue it keeps between invocations.
type lambdaFunction struct {
	s lambdaSettings
	// e builds the planner and the worker, as for the CLI.
	e *env
	q queue.Queue
	// pub publishes outcome events to events.bus; nil when it is not set.
	pub *event.Publisher
}

// newLambdaFunction checks the config's accounts against the credentials
// (cloud.Clients.CheckAccounts), opens the queue and builds the AWS clients of s; a zero
// Concurrency or Visibility is the default.
func newLambdaFunction(ctx context.Context, s lambdaSettings) (*lambdaFunction, error) {
	if s.Config == nil {
		return nil, errors.New("lambda: lambdaSettings.Config is nil")
	}
	switch s.Mode {
	case lambdaModePlan, lambdaModeWork:
	default:
		return nil, fmt.Errorf("lambda: mode %q: want plan or work", s.Mode)
	}
	if s.Concurrency == 0 {
		s.Concurrency = defaultBatchConcurrency
	}
	if s.Visibility == 0 {
		s.Visibility = defaultVisibility
	}
	clients := cloud.NewClients(s.AWS, s.Config)
	clients.APIOptions = s.APIOptions
	if err := clients.CheckAccounts(ctx); err != nil {
		return nil, err
	}
	now := time.Now
	if !s.Now.IsZero() {
		fixed := s.Now
		now = func() time.Time { return fixed }
	}
	e := &env{cfg: s.Config, now: now, clients: clients, log: s.Log}
	cfg := s.AWS.Copy()
	cfg.APIOptions = append(cfg.APIOptions, s.APIOptions...)
	q, err := queue.Open(ctx, s.Queue, queue.Options{AWS: cfg})
	if err != nil {
		return nil, fmt.Errorf("opening queue %s: %w", s.Queue, err)
	}
	return &lambdaFunction{s: s, e: e, q: q, pub: event.NewPublisher(cfg, s.Config.Events.Bus)}, nil
}

// Close closes the queue.
func (f *lambdaFunction) Close() error { return f.q.Close() }

// Handler is the function's handler for lambda.Start: Plan or Work by mode.
func (f *lambdaFunction) Handler() any {
	if f.s.Mode == lambdaModePlan {
		return f.Plan
	}
	return f.Work
}

// trigger is what invoked the planner, read from an EventBridge event envelope (a
// Scheduler target input or a rule's event). An empty or null payload, or {}, is a manual
// run.
type trigger struct {
	ID         string          `json:"id,omitempty"`
	Source     string          `json:"source,omitempty"`
	DetailType string          `json:"detail-type,omitempty"`
	Time       string          `json:"time,omitempty"`
	Detail     json.RawMessage `json:"detail,omitempty"`
}

// Kinds of trigger the planner serves.
const (
	// triggerManual: an empty event (a console test, `aws lambda invoke`).
	triggerManual = "manual"
	// triggerSchedule: EventBridge Scheduler with the input of deploy/hub.yaml, or a
	// classic EventBridge schedule rule ("Scheduled Event").
	triggerSchedule = "schedule"
	// triggerEvent: an EC2 instance state-change notification (the deploy/hub.yaml rule) or
	// a snapfleet.BackupNow event: planned by planner.PlanEvent, snapshots only.
	triggerEvent = "event"
)

// Kind says which planning a trigger asks for, by detail-type. Events not understood are
// refused with an error naming them rather than planned as a full run.
func (t trigger) Kind() (string, error) {
	switch {
	case t.Source == "" && t.DetailType == "":
		return triggerManual, nil
	case t.DetailType == "Scheduled Event", t.Source == "aws.scheduler":
		return triggerSchedule, nil
	case event.Handles(t.DetailType):
		return triggerEvent, nil
	default:
		return "", fmt.Errorf("event source %q detail-type %q: the planner does not handle it", t.Source, t.DetailType)
	}
}

// parseTrigger decodes the planner's invocation payload.
func parseTrigger(payload []byte) (trigger, error) {
	var t trigger
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
func (f *lambdaFunction) Plan(ctx context.Context, payload json.RawMessage) (planner.Summary, error) {
	t, err := parseTrigger(payload)
	if err != nil {
		return planner.Summary{}, err
	}
	kind, err := t.Kind()
	if err != nil {
		return planner.Summary{}, err
	}
	accounts, regions, err := f.e.clients.Targets(ctx, f.s.Config.Regions)
	if err != nil {
		return planner.Summary{}, err
	}
	var ev event.Event
	if kind == triggerEvent {
		if ev, err = event.Parse(payload); err != nil {
			// Retrying cannot help, but only a failed invocation keeps the event: after
			// Lambda's retries of the asynchronous call it goes, with this error, to the
			// planner's on-failure destination (deploy/hub.yaml's events dead-letter queue).
			return planner.Summary{}, fmt.Errorf("planning the event: %w", err)
		}
	}
	p := f.e.newPlanner(accounts, regions, f.q, false, false)
	p.Log = f.s.Log.With().Str("trigger", kind).Str("event", t.ID).Logger()
	aud, closeAudit := f.e.auditor(f.q, f.pub)
	defer closeAudit()
	p.Audit = aud
	var s planner.Summary
	if kind == triggerEvent {
		s, err = p.PlanEvent(ctx, ev)
	} else {
		s, err = p.Plan(ctx)
	}
	if err != nil {
		return s, fmt.Errorf("planning: %w", err)
	}
	if f.pub == nil {
		return s, nil // no events.bus: no summary, and no listings for its coverage
	}
	if err := f.pub.Publish(ctx, event.Outcome{DetailType: event.DetailPlanSummary, Detail: f.e.planSummaryDetail(ctx, s, accounts, regions)}); err != nil {
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
func (f *lambdaFunction) Work(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	msgs := make([]queue.Message, 0, len(ev.Records))
	for _, r := range ev.Records {
		if err := f.sameQueue(r.EventSourceARN); err != nil {
			return events.SQSEventResponse{}, err
		}
		msgs = append(msgs, recordMessage(r))
	}
	w := f.e.newWorker(f.q, f.pub, &workFlags{concurrency: f.s.Concurrency, visibility: f.s.Visibility, allowClockSkew: f.s.AllowClockSkew}, false)
	aud, closeAudit := f.e.auditor(f.q, f.pub)
	w.Audit = aud
	res, err := w.HandleBatch(ctx, msgs)
	closeAudit()
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

// recordMessage is the queue message of an SQS event record.
func recordMessage(r events.SQSMessage) queue.Message {
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
func (f *lambdaFunction) sameQueue(arn string) error {
	if arn == "" || !strings.HasPrefix(f.s.Queue, "http") {
		return nil
	}
	a := strings.Split(arn, ":")
	u := strings.Split(strings.TrimRight(f.s.Queue, "/"), "/")
	if len(a) == 6 && len(u) >= 2 && a[4] == u[len(u)-2] && a[5] == u[len(u)-1] {
		return nil
	}
	return fmt.Errorf("record from %s, but %s is %s: the event source mapping and the function's queue differ", arn, envQueue, f.s.Queue)
}
