package job

import (
	"regexp"
	"testing"
)

// idShapes are the regular expressions the hand-written matchers of ids.go replace: the
// contract as DESIGN.md states it, kept here as the oracle.
var idShapes = []struct {
	name  string
	re    *regexp.Regexp
	match func(string) bool
}{
	{"account", regexp.MustCompile(`^[0-9]{12}$`), ValidAccount},
	{"region", regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`), ValidRegion},
	{"policy", regexp.MustCompile(`^[a-z0-9-]{1,64}$`), ValidPolicyName},
	{"volume", regexp.MustCompile(`^vol-[0-9a-f]{8,17}$`), ValidVolumeID},
	{"snapshot", regexp.MustCompile(`^snap-[0-9a-f]{8,17}$`), ValidSnapshotID},
	{"instance", regexp.MustCompile(`^i-[0-9a-f]{8,17}$`), ValidInstanceID},
	{"device", regexp.MustCompile(`^/dev/[a-z0-9/]{1,32}$|^xvd[a-z0-9]{1,4}$`), validDevice},
	{"token", regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`), validToken},
}

// idSeeds are inputs on and around every edge of the shapes.
var idSeeds = []string{
	"", "-", "123456789012", "12345678901", "1234567890123", "12345678901a", "١٢٣٤٥٦٧٨٩٠١٢",
	"eu-west-1", "us-gov-east-1", "eu-1", "eu-west", "eu-west-", "eu--west-1", "euw-west-1", "e-west-1",
	"EU-west-1", "eu-west-1a", "eu-west-1-2", "eu-west-12", "-eu-west-1", "eu-west-1\n", "ap-south-1",
	"daily", "a", "DAILY", "da_ily", "policy-with-64-characters-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"policy-with-65-characters-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"vol-0123abcd", "vol-0123abc", "vol-0123456789abcdef0", "vol-0123456789abcdef01", "vol-0123ABCD",
	"vol-ffffffff", "vol-0123abcg", "vol-", "snap-0123abcd", "snap-0123456789abcdef0", "snap-012",
	"i-0123abcd", "i-0123456789abcdef0", "i-0123456789abcdef01", "i-0123abcd ", " i-0123abcd",
	"/dev/sda1", "/dev/", "/dev/xvda", "/dev/nvme0n1", "/dev/SDA", "/dev/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	"/dev/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "xvd", "xvda", "xvdabcd", "xvdabcde", "xvdA", "/dev/sd-a",
	"b7b5c0e4-4f3a-4a1e-9c1e-0d4c8f6d2a11", "drill_1", "a b", "é",
}

func TestIDShapes(t *testing.T) {
	for _, s := range idSeeds {
		for _, sh := range idShapes {
			if got, want := sh.match(s), sh.re.MatchString(s); got != want {
				t.Errorf("%s(%q) = %v, the expression says %v", sh.name, s, got, want)
			}
		}
	}
}

// FuzzIDShapes: the hand-written matchers agree with the expressions on any input.
func FuzzIDShapes(f *testing.F) {
	for _, s := range idSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, sh := range idShapes {
			if got, want := sh.match(s), sh.re.MatchString(s); got != want {
				t.Errorf("%s(%q) = %v, the expression says %v", sh.name, s, got, want)
			}
		}
	})
}
