package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithytime "github.com/aws/smithy-go/time"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/orisano/gosax"
)

// FastSnapshotList is an option of DescribeSnapshots calls that return whole pages of
// snapshots (the planner's and the report's listings): it decodes a successful response
// with a streaming XML reader (github.com/orisano/gosax) instead of the SDK's
// encoding/xml decoder, into the same ec2.DescribeSnapshotsOutput. A page of 1,000
// snapshots with their tags costs the SDK's decoder most of the plan's CPU and about
// 8 KB of garbage per snapshot (BENCHMARKS.md, plan100k). Errors, and any response that
// is not HTTP, keep the SDK's own deserializer, so that throttles are classified and
// retried as on every other call.
func FastSnapshotList(o *ec2.Options) {
	o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
		sdk, ok := s.Deserialize.Get(operationDeserializer)
		if !ok {
			return fmt.Errorf("no %s in the DescribeSnapshots stack", operationDeserializer)
		}
		_, err := s.Deserialize.Swap(operationDeserializer, &snapshotListDecoder{sdk: sdk})
		return err
	})
}

const operationDeserializer = "OperationDeserializer"

type snapshotListDecoder struct {
	sdk middleware.DeserializeMiddleware
}

func (*snapshotListDecoder) ID() string { return operationDeserializer }

func (m *snapshotListDecoder) HandleDeserialize(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error,
) {
	out, md, err := next.HandleDeserialize(ctx, in)
	resp, ok := out.RawResponse.(*smithyhttp.Response)
	if err != nil || !ok || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return m.sdk.HandleDeserialize(ctx, in, replay{out, md, err})
	}
	defer func() { smithyhttp.CloseResponseBody(ctx, resp, false, err) }()
	var res *ec2.DescribeSnapshotsOutput
	if res, err = DecodeSnapshotList(resp.Body); err != nil {
		return out, md, &smithy.DeserializationError{Err: fmt.Errorf("failed to decode response body, %w", err)}
	}
	out.Result = res
	return out, md, nil
}

// replay hands the SDK's deserializer the response already received.
type replay struct {
	out middleware.DeserializeOutput
	md  middleware.Metadata
	err error
}

func (r replay) HandleDeserialize(context.Context, middleware.DeserializeInput) (middleware.DeserializeOutput, middleware.Metadata, error) {
	return r.out, r.md, r.err
}

var saxReaders = sync.Pool{New: func() any { return gosax.NewReaderSize(nil, 256<<10) }}

// DecodeSnapshotList reads a DescribeSnapshots response body (EC2's query protocol XML)
// as the SDK would: every field of types.Snapshot, the tags, the next token. Unknown
// elements are skipped; an empty element is an empty value, an absent one nil.
func DecodeSnapshotList(body io.Reader) (*ec2.DescribeSnapshotsOutput, error) {
	r := saxReaders.Get().(*gosax.Reader)
	defer saxReaders.Put(r)
	r.Reset(body)
	r.EmitSelfClosingTag = true // <x/>: a start and an end, as <x></x>
	d := listDecoder{r: r, intern: map[string]string{}}
	return d.decode()
}

// listDecoder walks the document by depth: 1 the response, 2 nextToken and snapshotSet,
// 3 a snapshot (item), 4 its fields and tagSet, 5 a tag (item), 6 its key and value.
type listDecoder struct {
	r      *gosax.Reader
	path   [7]string // the element names of the open elements that matter
	depth  int
	text   []byte
	inText bool // the open element is a leaf whose text is being read
	out    ec2.DescribeSnapshotsOutput
	snap   *types.Snapshot
	tag    *types.Tag
	intern map[string]string // tag keys and short values repeat on every snapshot
}

func (d *listDecoder) decode() (*ec2.DescribeSnapshotsOutput, error) {
	for {
		e, err := d.r.Event()
		if err != nil {
			return nil, err
		}
		switch e.Type() {
		case gosax.EventEOF:
			if d.depth != 0 {
				return nil, errors.New("unexpected end of document")
			}
			return &d.out, nil
		case gosax.EventStart:
			d.start(e.Bytes)
		case gosax.EventEnd:
			if err := d.end(); err != nil {
				return nil, err
			}
		case gosax.EventText:
			if d.inText {
				t, err := gosax.Unescape(e.Bytes)
				if err != nil {
					return nil, err
				}
				d.text = append(d.text, t...)
			}
		case gosax.EventCData:
			if d.inText {
				b := e.Bytes
				if len(b) >= len("<![CDATA[]]>") {
					b = b[len("<![CDATA[") : len(b)-len("]]>")]
				}
				d.text = append(d.text, b...)
			}
		}
	}
}

func (d *listDecoder) start(b []byte) {
	name, _ := gosax.Name(b)
	if i := lastColon(name); i >= 0 {
		name = name[i+1:]
	}
	d.depth++
	d.inText = false
	if d.depth >= len(d.path) {
		return
	}
	d.path[d.depth] = d.name(name)
	switch {
	case d.depth == 2 && d.path[2] == "snapshotSet" && d.out.Snapshots == nil:
		d.out.Snapshots = []types.Snapshot{} // the SDK's: a set is never nil once present
	case d.depth == 4 && d.snap != nil && d.path[4] == "tagSet" && d.snap.Tags == nil:
		d.snap.Tags = []types.Tag{}
	case d.depth == 3 && d.path[2] == "snapshotSet" && d.path[3] == "item":
		d.out.Snapshots = append(d.out.Snapshots, types.Snapshot{})
		d.snap = &d.out.Snapshots[len(d.out.Snapshots)-1]
	case d.depth == 5 && d.snap != nil && d.path[4] == "tagSet" && d.path[5] == "item":
		d.snap.Tags = append(d.snap.Tags, types.Tag{})
		d.tag = &d.snap.Tags[len(d.snap.Tags)-1]
	case d.depth == 2 && d.path[2] == "nextToken",
		d.depth == 4 && d.snap != nil && d.path[4] != "tagSet",
		d.depth == 6 && d.tag != nil:
		d.inText, d.text = true, d.text[:0]
	}
}

func (d *listDecoder) end() error {
	defer func() { d.depth--; d.inText = false }()
	if d.depth <= 0 {
		return errors.New("unbalanced end element")
	}
	if !d.inText {
		if d.depth == 3 {
			d.snap, d.tag = nil, nil
		} else if d.depth == 5 {
			d.tag = nil
		}
		return nil
	}
	switch d.depth {
	case 2:
		d.out.NextToken = aws.String(string(d.text))
	case 4:
		if err := d.field(d.path[4]); err != nil {
			return fmt.Errorf("snapshot field %s: %w", d.path[4], err)
		}
	case 6:
		switch d.path[6] {
		case "key":
			d.tag.Key = aws.String(d.str())
		case "value":
			d.tag.Value = aws.String(d.str())
		}
	}
	return nil
}

// field sets the snapshot's field of the element name from the text read.
func (d *listDecoder) field(name string) error {
	s := d.snap
	switch name {
	case "availabilityZone":
		s.AvailabilityZone = aws.String(d.str())
	case "completionDurationMinutes":
		return d.int32(&s.CompletionDurationMinutes)
	case "completionTime":
		return d.time(&s.CompletionTime)
	case "dataEncryptionKeyId":
		s.DataEncryptionKeyId = aws.String(d.str())
	case "description":
		s.Description = aws.String(string(d.text))
	case "encrypted":
		v, err := strconv.ParseBool(string(d.text))
		if err != nil {
			return err
		}
		s.Encrypted = aws.Bool(v)
	case "fullSnapshotSizeInBytes":
		n, err := strconv.ParseInt(string(d.text), 10, 64)
		s.FullSnapshotSizeInBytes = &n
		return err
	case "kmsKeyId":
		s.KmsKeyId = aws.String(d.str())
	case "outpostArn":
		s.OutpostArn = aws.String(d.str())
	case "ownerAlias":
		s.OwnerAlias = aws.String(d.str())
	case "ownerId":
		s.OwnerId = aws.String(d.str())
	case "progress":
		s.Progress = aws.String(d.str())
	case "restoreExpiryTime":
		return d.time(&s.RestoreExpiryTime)
	case "snapshotId":
		s.SnapshotId = aws.String(string(d.text))
	case "sseType":
		s.SseType = types.SSEType(d.str())
	case "startTime":
		return d.time(&s.StartTime)
	case "status":
		s.State = types.SnapshotState(d.str())
	case "statusMessage":
		s.StateMessage = aws.String(string(d.text))
	case "storageTier":
		s.StorageTier = types.StorageTier(d.str())
	case "transferType":
		s.TransferType = types.TransferType(d.str())
	case "volumeId":
		s.VolumeId = aws.String(d.str())
	case "volumeSize":
		return d.int32(&s.VolumeSize)
	}
	return nil
}

func (d *listDecoder) int32(dst **int32) error {
	n, err := strconv.ParseInt(string(d.text), 10, 64) // as the SDK: 64 bits, then int32
	*dst = aws.Int32(int32(n))
	return err
}

func (d *listDecoder) time(dst **time.Time) error {
	t, err := smithytime.ParseDateTime(string(d.text))
	if err != nil {
		return err
	}
	*dst = &t
	return nil
}

// str is the text read, shared with equal texts of the page when short: tag keys,
// states, owners, policy names repeat on every snapshot.
func (d *listDecoder) str() string {
	if len(d.text) > 24 {
		return string(d.text)
	}
	if s, ok := d.intern[string(d.text)]; ok {
		return s
	}
	s := string(d.text)
	d.intern[s] = s
	return s
}

// name is an element name as a string, without allocating for the names it knows.
func (d *listDecoder) name(b []byte) string {
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	d.intern[s] = s
	return s
}

func lastColon(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ':' {
			return i
		}
	}
	return -1
}
