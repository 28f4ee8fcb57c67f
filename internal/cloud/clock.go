package cloud

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// awsClock remembers AWS's clock per account-region: the Date header of the latest EC2
// response, and when (on the local monotonic clock) it arrived.
type awsClock struct {
	mu   sync.Mutex
	seen map[string]clockReading
}

type clockReading struct {
	date, at time.Time
}

func (c *awsClock) record(key string, date time.Time) {
	at := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]clockReading{}
	}
	c.seen[key] = clockReading{date: date, at: at}
}

// now is AWS's clock for key now: the latest Date plus the time elapsed since it arrived
// (Date has whole seconds: up to a second behind). ok is false before any dated response.
func (c *awsClock) now(key string) (t time.Time, ok bool) {
	c.mu.Lock()
	r, ok := c.seen[key]
	c.mu.Unlock()
	if !ok {
		return time.Time{}, false
	}
	return r.date.Add(time.Since(r.at)), true
}

// AWSNow returns AWS's clock as seen from account and region: the Date of the latest
// response of their EC2 client (any call, any status), moved on by the time since. ok is
// false until a dated response arrived. The worker compares it with its own clock before
// a delete (clock skew).
func (c *Clients) AWSNow(account, region string) (time.Time, bool) {
	return c.clock.now(account + "/" + region)
}

// clockMiddleware records the Date header of every attempt's HTTP response of account
// and region's EC2 client, errors included.
func clockMiddleware(c *awsClock, account, region string) func(*middleware.Stack) error {
	key := account + "/" + region
	return func(s *middleware.Stack) error {
		return s.Deserialize.Add(middleware.DeserializeMiddlewareFunc("snapfleetAWSClock",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp != nil {
					if date, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
						c.record(key, date)
					}
				}
				return out, md, err
			}), middleware.Before)
	}
}
