package job

import "strings"

// The shapes of the ids and names a job carries, matched by hand: every job is checked
// when it is encoded and when it is decoded, and a plan of 130,000 jobs spent most of
// its encoding time in regular expressions. ids_test.go holds the expressions these
// match, and a fuzz test keeps them equal.

// ValidAccount reports whether s is a 12-digit AWS account id.
func ValidAccount(s string) bool { return len(s) == 12 && all(s, isDigit) }

// ValidRegion reports whether s looks like an AWS region name: two lowercase letters,
// one or more dash-separated words of lowercase letters, and a dash-separated number
// (eu-west-1, us-gov-east-1).
func ValidRegion(s string) bool {
	if len(s) < 2 || !isLower(s[0]) || !isLower(s[1]) {
		return false
	}
	words := 0
	for rest := s[2:]; rest != "" && rest[0] == '-'; {
		w := rest[1:]
		if n := strings.IndexByte(w, '-'); n >= 0 {
			w, rest = w[:n], w[n:]
		} else {
			rest = ""
		}
		switch {
		case w == "":
			return false
		case all(w, isLower):
			words++
		case all(w, isDigit) && rest == "":
			return words >= 1
		default:
			return false
		}
	}
	return false
}

// ValidPolicyName reports whether s is a valid policy name ([a-z0-9-]+, at most 64).
func ValidPolicyName(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && all(s, func(c byte) bool { return isLower(c) || isDigit(c) || c == '-' })
}

// ValidVolumeID reports whether s is an EBS volume id: vol- and 8 to 17 lowercase hex
// digits.
func ValidVolumeID(s string) bool { return hexID(s, "vol-") }

// ValidSnapshotID reports whether s is an EBS snapshot id: snap- and 8 to 17 lowercase
// hex digits.
func ValidSnapshotID(s string) bool { return hexID(s, "snap-") }

// ValidInstanceID reports whether s is an EC2 instance id: i- and 8 to 17 lowercase hex
// digits.
func ValidInstanceID(s string) bool { return hexID(s, "i-") }

// validDevice reports whether s is a device name: /dev/ and 1 to 32 of [a-z0-9/], or
// xvd and 1 to 4 of [a-z0-9].
func validDevice(s string) bool {
	rest, n := "", 0
	switch {
	case len(s) > 5 && s[:5] == "/dev/":
		rest, n = s[5:], 32
		if !all(rest, func(c byte) bool { return isLower(c) || isDigit(c) || c == '/' }) {
			return false
		}
	case len(s) > 3 && s[:3] == "xvd":
		rest, n = s[3:], 4
		if !all(rest, func(c byte) bool { return isLower(c) || isDigit(c) }) {
			return false
		}
	default:
		return false
	}
	return len(rest) <= n
}

// validToken reports whether s is 1 to 64 letters, digits, '-' or '_': an event or drill
// id.
func validToken(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && all(s, func(c byte) bool {
		return isLower(c) || ('A' <= c && c <= 'Z') || isDigit(c) || c == '-' || c == '_'
	})
}

func hexID(s, prefix string) bool {
	if len(s) < len(prefix)+8 || len(s) > len(prefix)+17 || s[:len(prefix)] != prefix {
		return false
	}
	return all(s[len(prefix):], func(c byte) bool { return isDigit(c) || ('a' <= c && c <= 'f') })
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }

// all reports whether every byte of s satisfies ok (true for "").
func all(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}
