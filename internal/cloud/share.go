package cloud

import (
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// SharedWith names who a snapshot's createVolumePermission lets create volumes from it —
// accounts, and "group all" when it is public — sorted and joined; "" when nobody. The
// planner's share review and the worker's check before a delete read it the same way.
func SharedWith(perms []types.CreateVolumePermission) string {
	var who []string
	for _, p := range perms {
		switch {
		case p.UserId != nil:
			who = append(who, aws.ToString(p.UserId))
		case p.Group != "":
			who = append(who, "group "+string(p.Group))
		}
	}
	slices.Sort(who)
	return strings.Join(who, ", ")
}
