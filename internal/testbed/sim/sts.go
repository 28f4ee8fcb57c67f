package sim

import (
	"encoding/xml"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

type (
	credentialsXML struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	}
	stsResult struct {
		Credentials   *credentialsXML `xml:"Credentials,omitempty"`
		AssumedRoleID string          `xml:"AssumedRoleUser>AssumedRoleId,omitempty"`
		AssumedARN    string          `xml:"AssumedRoleUser>Arn,omitempty"`
		Account       string          `xml:"Account,omitempty"`
		Arn           string          `xml:"Arn,omitempty"`
		UserID        string          `xml:"UserId,omitempty"`
	}
	// stsResponse is every STS answer: ActionResponse > ActionResult, ResponseMetadata.
	stsResponse struct {
		XMLName   xml.Name
		NS        string
		Result    stsResult
		RequestID string
	}
)

// MarshalXML names the result element after the action (AssumeRoleResult), as STS does.
func (r stsResponse) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	start := xml.StartElement{Name: r.XMLName, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: r.NS}}}
	action := strings.TrimSuffix(r.XMLName.Local, "Response")
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if err := e.EncodeElement(r.Result, xml.StartElement{Name: xml.Name{Local: action + "Result"}}); err != nil {
		return err
	}
	meta := struct {
		RequestID string `xml:"RequestId"`
	}{r.RequestID}
	if err := e.EncodeElement(meta, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}}); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}

var roleRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):role/(.+)$`)

// stsLocked answers one STS action of account. s.mu is held.
func (s *Sim) stsLocked(account, action string, form url.Values) (any, error) {
	out := stsResponse{XMLName: xml.Name{Local: action + "Response"}, NS: stsNS, RequestID: "sim"}
	switch action {
	case "GetCallerIdentity":
		out.Result = stsResult{Account: account, Arn: "arn:aws:iam::" + account + ":user/sim", UserID: "AIDASIM" + account}
	case "AssumeRole":
		m := roleRE.FindStringSubmatch(form.Get("RoleArn"))
		if m == nil {
			return nil, badRequest("ValidationError", "RoleArn %q is not a role ARN", form.Get("RoleArn"))
		}
		life := time.Hour
		if d, err := strconv.Atoi(form.Get("DurationSeconds")); err == nil && d > 0 {
			life = time.Duration(d) * time.Second
		}
		s.seq++
		key := fmt.Sprintf("ASIASIM%013d", s.seq)
		s.keys[key] = m[1]
		session := form.Get("RoleSessionName")
		out.Result = stsResult{
			Credentials: &credentialsXML{AccessKeyID: key, SecretAccessKey: "sim-secret", SessionToken: "sim-token-" + key,
				// The SDK checks expiry on the real clock, whatever the simulator's.
				Expiration: time.Now().UTC().Add(life).Format(time.RFC3339)},
			AssumedRoleID: "AROASIM:" + session,
			AssumedARN:    "arn:aws:sts::" + m[1] + ":assumed-role/" + m[2] + "/" + session,
		}
	default:
		return nil, badRequest("InvalidAction", "the simulator does not serve sts:%s", action)
	}
	return out, nil
}
