package cloud

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/snapfleet/snapfleet/internal/testbed/mototest"
)

// TestAWSNowFromMotoDate: AWSNow knows nothing before an EC2 response, then reads AWS's
// clock from the Date header moto serves (the real clock, to the second), per
// account-region.
func TestAWSNowFromMotoDate(t *testing.T) {
	t.Parallel()
	s := mototest.Start(t)
	cl := NewClients(s.AWSConfig(t), testConfig())
	if _, ok := cl.AWSNow(mototest.Account, mototest.Region); ok {
		t.Fatal("AWSNow known before any call")
	}
	before := time.Now()
	if _, err := cl.EC2(mototest.Account, mototest.Region).DescribeVolumes(context.Background(), &ec2.DescribeVolumesInput{}); err != nil {
		t.Fatal(err)
	}
	got, ok := cl.AWSNow(mototest.Account, mototest.Region)
	if !ok {
		t.Fatal("AWSNow unknown after a DescribeVolumes: no Date recorded")
	}
	// Date has whole seconds; moto's clock is this machine's.
	if got.Before(before.Add(-2*time.Second)) || got.After(time.Now().Add(2*time.Second)) {
		t.Errorf("AWSNow = %s, want about %s", got, before)
	}
	if _, ok := cl.AWSNow(mototest.Account, "eu-west-1"); ok {
		t.Error("AWSNow known for a region never called")
	}
}
