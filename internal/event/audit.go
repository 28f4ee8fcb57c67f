package event

import (
	"context"

	"github.com/snapfleet/snapfleet/internal/audit"
)

// DetailAudit: one entry of the audit trail; the detail is an audit.Record.
const DetailAudit = "snapfleet.Audit"

// AuditSink returns the audit sink that publishes each record as a snapfleet.Audit event
// through p (ten per PutEvents call), naming the snapshot's ARN as the event's resource; nil
// when p is nil (no events.bus).
func AuditSink(p *Publisher) audit.Sink {
	if p == nil {
		return nil
	}
	return audit.SinkFunc(func(ctx context.Context, recs []audit.Record) error {
		outs := make([]Outcome, 0, len(recs))
		for _, r := range recs {
			o := Outcome{DetailType: DetailAudit, Detail: r}
			if r.Snapshot != "" && r.Region != "" {
				o.Resources = []string{"arn:aws:ec2:" + r.Region + "::snapshot/" + r.Snapshot}
			}
			outs = append(outs, o)
		}
		return p.Publish(ctx, outs...)
	})
}
