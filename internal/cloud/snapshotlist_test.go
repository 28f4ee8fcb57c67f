package cloud

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// canned answers every request with one response.
type canned struct {
	status int
	body   string
}

func (c canned) Do(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: c.status, Header: http.Header{"Content-Type": {"text/xml"}},
		Body: io.NopCloser(strings.NewReader(c.body))}, nil
}

// bothDecoders lists one page of body with the SDK's decoder and with FastSnapshotList.
func bothDecoders(t *testing.T, status int, body string) (sdk, fast *ec2.DescribeSnapshotsOutput, sdkErr, fastErr error) {
	t.Helper()
	c := ec2.New(ec2.Options{Region: "us-east-1", HTTPClient: canned{status, body},
		Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
	ctx := context.Background()
	sdk, sdkErr = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{})
	fast, fastErr = c.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{}, FastSnapshotList)
	return sdk, fast, sdkErr, fastErr
}

var sameOutput = cmp.Options{cmpopts.IgnoreFields(ec2.DescribeSnapshotsOutput{}, "ResultMetadata"),
	cmpopts.IgnoreUnexported(ec2.DescribeSnapshotsOutput{}, types.Snapshot{}, types.Tag{})}

// esc escapes s as XML text.
func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// page is a DescribeSnapshots response of EC2's shape: every field, self-closing and
// empty elements, an element the decoder does not know (nested), odd tag text.
func page(desc, key, value, token string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
    <snapshotSet>
        <item>
            <snapshotId>snap-1234567890abcdef0</snapshotId>
            <volumeId>vol-1234567890abcdef0</volumeId>
            <status>completed</status>
            <statusMessage/>
            <startTime>2026-11-22T01:00:03.000Z</startTime>
            <progress>100%</progress>
            <ownerId>123456789012</ownerId>
            <volumeSize>8</volumeSize>
            <description>` + esc(desc) + `</description>
            <encrypted>true</encrypted>
            <kmsKeyId>arn:aws:kms:us-east-1:123456789012:key/abc</kmsKeyId>
            <dataEncryptionKeyId></dataEncryptionKeyId>
            <storageTier>archive</storageTier>
            <restoreExpiryTime>2026-12-01T00:00:00Z</restoreExpiryTime>
            <sseType>sse-ebs</sseType>
            <availabilityZone>us-east-1a</availabilityZone>
            <transferType>standard</transferType>
            <completionDurationMinutes>3</completionDurationMinutes>
            <completionTime>2026-11-22T01:03:03.000Z</completionTime>
            <fullSnapshotSizeInBytes>8589934592</fullSnapshotSizeInBytes>
            <outpostArn>arn:aws:outposts:us-east-1:123456789012:outpost/op-1</outpostArn>
            <ownerAlias>self</ownerAlias>
            <futureField><item><key>not a tag</key></item></futureField>
            <tagSet>
                <item><key>` + esc(key) + `</key><value>` + esc(value) + `</value></item>
                <item><key>snapfleet:policy</key><value>daily</value></item>
                <item><key>empty</key><value/></item>
            </tagSet>
        </item>
        <item>
            <snapshotId>snap-00000000000000002</snapshotId>
            <volumeId>vol-ffffffff</volumeId>
            <status>pending</status>
            <startTime>2026-11-23T01:00:03Z</startTime>
            <ownerId>123456789012</ownerId>
            <tagSet/>
        </item>
    </snapshotSet>` + token + `
</DescribeSnapshotsResponse>`
}

// TestFastSnapshotListSameAsSDK: the fast decoder reads a page exactly as the SDK does.
func TestFastSnapshotListSameAsSDK(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"full":   page(`a "quoted" <desc> & more`, "Team & <Ops>", "ünïcödé 'x' > y", "<nextToken>tok&amp;en==</nextToken>"),
		"last":   page("", "Name", "", ""),
		"empty":  `<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><snapshotSet/></DescribeSnapshotsResponse>`,
		"prefix": `<ec2:DescribeSnapshotsResponse xmlns:ec2="x"><ec2:snapshotSet><ec2:item><ec2:snapshotId>snap-1</ec2:snapshotId></ec2:item></ec2:snapshotSet></ec2:DescribeSnapshotsResponse>`,
	} {
		sdk, fast, sdkErr, fastErr := bothDecoders(t, 200, body)
		if sdkErr != nil || fastErr != nil {
			t.Fatalf("%s: errors SDK %v, fast %v", name, sdkErr, fastErr)
		}
		if d := cmp.Diff(sdk, fast, sameOutput); d != "" {
			t.Errorf("%s: fast decoder differs from the SDK's (-sdk +fast):\n%s", name, d)
		}
		if name == "full" && (len(fast.Snapshots) != 2 || len(fast.Snapshots[0].Tags) != 3) {
			t.Errorf("full: %d snapshots, want 2 with 3 tags on the first: the comparison saw nothing", len(fast.Snapshots))
		}
	}
}

// TestFastSnapshotListErrors: an error response goes through the SDK's own deserializer
// (a throttle is classified as one); a malformed body is an error, not a short page.
func TestFastSnapshotListErrors(t *testing.T) {
	t.Parallel()
	throttle := `<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r</RequestID></Response>`
	_, _, sdkErr, fastErr := bothDecoders(t, 503, throttle)
	if c, _ := Classify(fastErr); c != Throttled {
		t.Errorf("throttle through the fast decoder: %v (class %v), want Throttled like the SDK's %v", fastErr, c, sdkErr)
	}
	for _, bad := range []string{
		page("x", "k", "v", "")[:900], // cut mid-document
		strings.Replace(page("x", "k", "v", ""), "<volumeSize>8", "<volumeSize>eight", 1),
		strings.Replace(page("x", "k", "v", ""), "2026-11-23T01:00:03Z", "yesterday", 1),
	} {
		if _, _, _, err := bothDecoders(t, 200, bad); err == nil {
			t.Errorf("a malformed page decoded without error:\n%.200s", bad)
		}
	}
}

// FuzzFastSnapshotList: whatever the text of a description, tag key and value, and the
// next token, the fast decoder reads what the SDK reads (or both fail).
func FuzzFastSnapshotList(f *testing.F) {
	f.Add("desc", "Team", "ops", "tok")
	f.Add("&amp; <x>", "a&b", "'\"", "")
	f.Add("\t \n", "ключ", "値", "==")
	f.Fuzz(func(t *testing.T, desc, key, value, token string) {
		if token != "" {
			token = "<nextToken>" + esc(token) + "</nextToken>"
		}
		sdk, fast, sdkErr, fastErr := bothDecoders(t, 200, page(desc, key, value, token))
		if (sdkErr == nil) != (fastErr == nil) {
			t.Fatalf("SDK error %v, fast error %v", sdkErr, fastErr)
		}
		if d := cmp.Diff(sdk, fast, sameOutput); sdkErr == nil && d != "" {
			t.Errorf("fast decoder differs from the SDK's (-sdk +fast):\n%s", d)
		}
	})
}

// TestFastSnapshotListOnMoto: moto's DescribeSnapshots pages read the same with both
// decoders, tags with XML's special characters included.
func TestFastSnapshotListOnMoto(t *testing.T) {
	t.Parallel()
	s := mototest.Start(t)
	ctx := context.Background()
	c := ec2.NewFromConfig(s.AWSConfig(t))
	vol, err := c.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(mototest.Region + "a"), Size: aws.Int32(8)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		_, err := c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId, Description: aws.String(fmt.Sprintf("d%d <&>", i)),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: []types.Tag{
				{Key: aws.String("snapfleet:policy"), Value: aws.String("daily")},
				{Key: aws.String("Team"), Value: aws.String(fmt.Sprintf(`R&D "%d" <ops>`, i))}}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(5)}
	var sdk, fast []types.Snapshot
	for _, opts := range [][]func(*ec2.Options){nil, {FastSnapshotList}} {
		var got []types.Snapshot
		pages := ec2.NewDescribeSnapshotsPaginator(c, in)
		for pages.HasMorePages() {
			p, err := pages.NextPage(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p.Snapshots...)
		}
		if opts == nil {
			sdk = got
		} else {
			fast = got
		}
	}
	if len(sdk) < 5 {
		t.Fatalf("moto listed %d snapshots, want at least 5", len(sdk))
	}
	if d := cmp.Diff(sdk, fast, sameOutput); d != "" {
		t.Errorf("fast decoder differs from the SDK's on moto (-sdk +fast):\n%s", d)
	}
}
