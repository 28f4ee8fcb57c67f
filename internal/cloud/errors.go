package cloud

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Class is what an AWS error means to snapfleet.
type Class int

// Error classes. Every AWS error code snapfleet reacts to is in the table below; anything
// else is Unknown and treated as retryable a bounded number of times.
const (
	Unknown Class = iota
	// Throttled: back off and retry; never a dead letter.
	Throttled
	// NotFound: the snapshot, volume, instance or SQS queue does not exist (any more).
	NotFound
	// InUse: the snapshot is used by an AMI; skip with a reason.
	InUse
	// Denied: credentials or permissions are wrong; retrying will not help.
	Denied
	// Invalid: the request itself is wrong; retrying will not help.
	Invalid
	// Transient: a server-side or network failure worth retrying.
	Transient
	// Unsupported: the endpoint says the API action does not exist there (an older
	// partition, an emulator). Callers decide what its absence means; by default it is
	// retried like Unknown.
	Unsupported
	// Unmanaged: SSM cannot reach the instance (no SSM agent, no instance profile, not
	// online): Run Command will not work until someone fixes the instance.
	Unmanaged
)

var classNames = map[Class]string{
	Unknown: "unknown", Throttled: "throttled", NotFound: "not_found", InUse: "in_use",
	Denied: "access_denied", Invalid: "invalid_request", Transient: "transient",
	Unsupported: "unsupported", Unmanaged: "not_managed",
}

func (c Class) String() string { return classNames[c] }

// code is one row of the table: what the error means and, for throttling, the least wait
// before the same call is worth trying again.
type code struct {
	class   Class
	minWait time.Duration
}

// codes classifies AWS error codes — the one place they are matched.
var codes = map[string]code{
	"RequestLimitExceeded":                  {Throttled, 0},
	"Throttling":                            {Throttled, 0},
	"ThrottlingException":                   {Throttled, 0},
	"TooManyRequestsException":              {Throttled, 0},
	"RequestThrottled":                      {Throttled, 0},
	"SnapshotCreationPerVolumeRateExceeded": {Throttled, 15 * time.Second},
	"ConcurrentSnapshotLimitExceeded":       {Throttled, 30 * time.Second},
	"PendingSnapshotLimitExceeded":          {Throttled, 30 * time.Second},
	// CopySnapshot: 20 copies in progress per destination region.
	"ResourceLimitExceeded":                   {Throttled, 10 * time.Second},
	"InvalidSnapshot.NotFound":                {NotFound, 0},
	"InvalidVolume.NotFound":                  {NotFound, 0},
	"InvalidSnapshotID.NotFound":              {NotFound, 0},
	"InvalidVolumeID.NotFound":                {NotFound, 0},
	"InvalidInstanceID.NotFound":              {NotFound, 0},
	"AWS.SimpleQueueService.NonExistentQueue": {NotFound, 0}, // SQS, query protocol
	"QueueDoesNotExist":                       {NotFound, 0}, // SQS, JSON protocol
	"InvalidSnapshot.InUse":                   {InUse, 0},
	"UnauthorizedOperation":                   {Denied, 0},
	"AccessDenied":                            {Denied, 0},
	"AccessDeniedException":                   {Denied, 0},
	"AuthFailure":                             {Denied, 0},
	"InvalidClientTokenId":                    {Denied, 0},
	"ExpiredToken":                            {Transient, 0},
	"OptInRequired":                           {Denied, 0},
	"InvalidParameterValue":                   {Invalid, 0},
	"InvalidParameter":                        {Invalid, 0},
	"MissingParameter":                        {Invalid, 0},
	"IncorrectState":                          {Transient, 0},
	"InternalError":                           {Transient, 0},
	"InvalidAction":                           {Unsupported, 0},
	"UnsupportedOperation":                    {Unsupported, 0},
	"InternalFailure":                         {Transient, 0},
	// SSM Run Command (consistency: application).
	"InvalidInstanceId":       {Unmanaged, 0}, // not a managed instance, or its agent is offline
	"UnsupportedPlatformType": {Unmanaged, 0}, // the document does not run on its platform
	"InvalidDocument":         {Invalid, 0},
	"InvalidDocumentVersion":  {Invalid, 0},
	"InvalidParameters":       {Invalid, 0},
	"InvalidRole":             {Invalid, 0},
	"MaxDocumentSizeExceeded": {Invalid, 0},
	"InvalidCommandId":        {Invalid, 0},
	"DuplicateInstanceId":     {Invalid, 0},
	"InvocationDoesNotExist":  {NotFound, 0}, // not yet, just after SendCommand
	"ServiceUnavailable":      {Transient, 0},
	"Unavailable":             {Transient, 0},
}

// Classify returns the class of err and, for throttling, the least wait before retrying.
func Classify(err error) (Class, time.Duration) {
	if err == nil {
		return Unknown, 0
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if c, ok := codes[ae.ErrorCode()]; ok {
			return c.class, c.minWait
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return Transient, 0
	}
	var maxAttempts interface{ RetryableError() bool }
	if errors.As(err, &maxAttempts) && maxAttempts.RetryableError() {
		return Transient, 0
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return Transient, 0
	}
	var qe ratelimit.QuotaExceededError
	if errors.As(err, &qe) {
		return Throttled, 0
	}
	return Unknown, 0
}

// Code returns the AWS error code of err, or "" when it carries none.
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// Unanswered reports whether err is an HTTP response that carries no AWS error, and its
// status: a body that could not be read as the API's (an emulator's or a proxy's HTML
// error page), so the endpoint did not answer the call at all.
func Unanswered(err error) (status int, ok bool) {
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	if err == nil || errors.As(err, &ae) || !errors.As(err, &re) {
		return 0, false
	}
	return re.HTTPStatusCode(), true
}
