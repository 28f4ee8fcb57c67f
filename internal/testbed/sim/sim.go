// Package sim answers, from memory, the EC2, STS and SQS calls snapfleet makes, over the
// same HTTP protocols as AWS, for benchmarks at fleet sizes and call rates that moto
// (one Python process) cannot serve on a small machine. It is the "answers the EC2
// snapshot calls itself" half of the limits-faithful endpoint: run it behind
// internal/testbed/awslimits, which enforces AWS's token buckets (one per action); SQS (sqs.go)
// goes to it directly.
//
// What it models, per account and region: instances (state, tags, block device
// mappings), their volumes, snapshots (owner, volume, start time, tags; completed at
// once, as moto), AMIs that use snapshots (DeleteSnapshot answers InvalidSnapshot.InUse),
// and STS: GetCallerIdentity, and AssumeRole, which issues keys that belong to the role's
// account, so accounts are separated as in AWS. Describe calls honour the filters
// snapfleet uses (an unknown filter name is an error, as in EC2), OwnerIds, ids (an
// unknown id is the EC2 NotFound error) and pagination: MaxResults and NextToken, so a
// listing of more than one page really comes in pages. What it does not model: snapshot
// locks (none is ever locked), shares (none is ever shared), and every action snapfleet
// does not call (InvalidAction). It is a measuring instrument and its behaviour is tested
// through the AWS SDK (sim_test.go).
package sim

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultAccount owns the access keys that no AssumeRole issued (moto's default account).
const DefaultAccount = "123456789012"

// Instance is a seeded instance.
type Instance struct {
	ID, State string
	Tags      map[string]string
	// Devices are the attached volumes, the root device first.
	Devices []Device
}

// Device is one block device mapping.
type Device struct{ Name, Volume string }

// Snapshot is a snapshot as the simulator holds it.
type Snapshot struct {
	ID, Volume, Owner, Description string
	Start                          time.Time
	Tags                           map[string]string
	// Ready, when set, is when a copy in progress completes (copy.go); Tier is
	// "archive" once ModifySnapshotTier moved it, else standard.
	Ready time.Time
	Tier  string
}

type scopeKey struct{ account, region string }

// scope is one account-region. Slices keep creation order, for stable pages.
type scope struct {
	instances []*Instance
	volumes   []*volume
	snapshots []*Snapshot
	images    []image
	copying   []*Snapshot // the copies in progress (Ready set), of snapshots
}

type volume struct {
	id, instance, device string
	tags                 map[string]string
	// Of a volume CreateVolume made (volume.go): its zone, size and creation time.
	made    bool
	zone    string
	size    int
	created time.Time
}

type image struct{ id, snapshot string }

// Sim is an in-memory EC2 and STS. Its methods are safe for concurrent use.
type Sim struct {
	now func() time.Time

	mu     sync.Mutex
	scopes map[scopeKey]*scope
	keys   map[string]string // access key id → account
	seq    uint64
	calls  map[string]int // "service:Action" → calls answered
	queues []*sqsQueue
	base   string // the URL the first SQS call came to, for queue URLs
	copies copyState
	ssm    ssmState // ssm.go
}

// New returns an empty simulator on clock now (time.Now when nil).
func New(now func() time.Time) *Sim {
	if now == nil {
		now = time.Now
	}
	return &Sim{now: now, scopes: map[scopeKey]*scope{}, keys: map[string]string{}, calls: map[string]int{}}
}

// Serve answers on addr ("127.0.0.1:0" for a free loopback port) until the returned
// close func is called; the URL is the base URL to point AWS_ENDPOINT_URL_EC2 and _STS at.
func (s *Sim) Serve(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("sim: listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

func (s *Sim) scopeLocked(account, region string) *scope {
	k := scopeKey{account, region}
	sc, ok := s.scopes[k]
	if !ok {
		sc = &scope{}
		s.scopes[k] = sc
	}
	return sc
}

// id makes a new resource id: prefix + 17 hex digits, unique in the simulator.
func (s *Sim) idLocked(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s-%017x", prefix, s.seq)
}

// AddInstances seeds n instances in account and region, each with volumes attached
// volumes (/dev/xvda the root, then /dev/sdf, /dev/sdg, ...), in state ("running" when
// empty) and with tags; it returns them.
func (s *Sim) AddInstances(account, region string, n, volumes int, state string, tags map[string]string) []Instance {
	if state == "" {
		state = "running"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeLocked(account, region)
	out := make([]Instance, 0, n)
	for range n {
		in := &Instance{ID: s.idLocked("i"), State: state, Tags: copyTags(tags)}
		for d := range volumes {
			dev := "/dev/xvda"
			if d > 0 {
				dev = "/dev/sd" + string(rune('f'+d-1))
			}
			v := &volume{id: s.idLocked("vol"), instance: in.ID, device: dev, tags: map[string]string{}}
			sc.volumes = append(sc.volumes, v)
			in.Devices = append(in.Devices, Device{Name: dev, Volume: v.id})
		}
		sc.instances = append(sc.instances, in)
		out = append(out, copyInstance(in))
	}
	return out
}

// AddSnapshot seeds a completed snapshot of volume owned by account, started at start.
func (s *Sim) AddSnapshot(account, region, volume string, start time.Time, tags map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeLocked(account, region)
	sn := &Snapshot{ID: s.idLocked("snap"), Volume: volume, Owner: account, Start: start.UTC(), Tags: copyTags(tags)}
	sc.snapshots = append(sc.snapshots, sn)
	return sn.ID
}

// AddImage seeds an AMI of account whose block device mapping uses snapshot.
func (s *Sim) AddImage(account, region, snapshot string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeLocked(account, region)
	id := s.idLocked("ami")
	sc.images = append(sc.images, image{id: id, snapshot: snapshot})
	return id
}

// Snapshots returns copies of the snapshots of account and region, oldest first.
func (s *Sim) Snapshots(account, region string) []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeLocked(account, region)
	out := make([]Snapshot, 0, len(sc.snapshots))
	for _, sn := range sc.snapshots {
		c := *sn
		c.Tags = copyTags(sn.Tags)
		out = append(out, c)
	}
	return out
}

// Calls returns how many calls were answered, per "service:Action".
func (s *Sim) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// copyTags is a copy of t, never nil.
func copyTags(t map[string]string) map[string]string {
	m := make(map[string]string, len(t))
	maps.Copy(m, t)
	return m
}

func copyInstance(in *Instance) Instance {
	c := *in
	c.Tags = copyTags(in.Tags)
	c.Devices = append([]Device(nil), in.Devices...)
	return c
}

// apiError is an AWS error answer.
type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func badRequest(code, format string, a ...any) *apiError {
	return &apiError{http.StatusBadRequest, code, fmt.Sprintf(format, a...)}
}

var credRE = regexp.MustCompile(`Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/aws4_request`)

// ServeHTTP answers one EC2 or STS query-protocol call.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "sim: reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	m := credRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		writeError(w, "", &apiError{http.StatusForbidden, "MissingAuthenticationToken", "no SigV4 Authorization header"})
		return
	}
	key, region, service := m[1], m[2], m[3]
	if service == "sqs" {
		s.serveSQS(w, r, body)
		return
	}
	if service == "ssm" {
		s.mu.Lock()
		account, ok := s.keys[key]
		s.mu.Unlock()
		if !ok {
			account = DefaultAccount
		}
		s.serveSSM(w, r, body, account, region)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "sim: parsing body: "+err.Error(), http.StatusBadRequest)
		return
	}
	for k, v := range r.URL.Query() {
		form[k] = v
	}
	action := form.Get("Action")

	s.mu.Lock()
	defer s.mu.Unlock()
	account, ok := s.keys[key]
	if !ok {
		account = DefaultAccount
	}
	s.calls[service+":"+action]++
	var resp any
	switch service {
	case "ec2":
		resp, err = s.ec2Locked(account, region, action, form)
	case "sts":
		resp, err = s.stsLocked(account, action, form)
	default:
		err = badRequest("InvalidAction", "the simulator does not serve %s", service)
	}
	if err != nil {
		writeError(w, service, err)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = io.WriteString(w, xml.Header)
	if err := xml.NewEncoder(w).Encode(resp); err != nil {
		if _, gone := errors.AsType[net.Error](err); !gone {
			panic(fmt.Sprintf("sim: encoding %s: %v", action, err)) // a bug in a response type
		}
		// The client went away mid-answer (a cancelled call): nobody to answer.
	}
}

func writeError(w http.ResponseWriter, service string, err error) {
	e, ok := err.(*apiError)
	if !ok {
		e = &apiError{http.StatusInternalServerError, "InternalError", err.Error()}
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	var b strings.Builder
	xml.EscapeText(&b, []byte(e.message))
	if service == "sts" {
		fmt.Fprintf(w, `%s<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>sim</RequestId></ErrorResponse>`, xml.Header, e.code, b.String())
		return
	}
	fmt.Fprintf(w, `%s<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>sim</RequestID></Response>`, xml.Header, e.code, b.String())
}

// list reads the flat list prefix.1, prefix.2, ... of a query-protocol form.
func list(form url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v...)
	}
}

// tags reads prefix.N.Key / prefix.N.Value.
func tags(form url.Values, prefix string) map[string]string {
	out := map[string]string{}
	for i := 1; ; i++ {
		p := prefix + "." + strconv.Itoa(i)
		k, ok := form[p+".Key"]
		if !ok {
			return out
		}
		out[k[0]] = form.Get(p + ".Value")
	}
}

// snapshotTags reads the tags of the TagSpecifications for resource type snapshot.
func snapshotTags(form url.Values) map[string]string {
	out := map[string]string{}
	for i := 1; ; i++ {
		p := "TagSpecification." + strconv.Itoa(i)
		rt, ok := form[p+".ResourceType"]
		if !ok {
			return out
		}
		if rt[0] == "snapshot" {
			for k, v := range tags(form, p+".Tag") {
				out[k] = v
			}
		}
	}
}

// filter is one Filter.N of a Describe call.
type filter struct {
	name   string
	values []string
}

func filters(form url.Values) []filter {
	var out []filter
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i)
		n, ok := form[p+".Name"]
		if !ok {
			return out
		}
		out = append(out, filter{n[0], list(form, p+".Value")})
	}
}

// match reports whether every filter holds; field answers a named attribute of the
// resource (ok false: the filter name is unknown for this resource).
func match(fs []filter, t map[string]string, field func(name string) (string, bool)) (bool, error) {
	for _, f := range fs {
		var have []string
		switch {
		case strings.HasPrefix(f.name, "tag:"):
			if v, ok := t[strings.TrimPrefix(f.name, "tag:")]; ok {
				have = []string{v}
			}
		case f.name == "tag-key":
			for k := range t {
				have = append(have, k)
			}
		default:
			v, ok := field(f.name)
			if !ok {
				return false, badRequest("InvalidParameterValue", "The filter '%s' is invalid", f.name)
			}
			have = []string{v}
		}
		hit := false
		for _, h := range have {
			for _, want := range f.values {
				if wildcard(want, h) {
					hit = true
				}
			}
		}
		if !hit {
			return false, nil
		}
	}
	return true, nil
}

// page cuts items (already filtered) into the page NextToken and MaxResults ask for.
func page[T any](form url.Values, items []T) ([]T, string, error) {
	start := 0
	if t := form.Get("NextToken"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > len(items) {
			return nil, "", badRequest("InvalidNextToken", "The token '%s' is invalid", t)
		}
		start = n
	}
	size := len(items) - start
	if v := form.Get("MaxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, "", badRequest("InvalidParameterValue", "MaxResults %q is invalid", v)
		}
		size = min(size, n)
	}
	next := ""
	if start+size < len(items) {
		next = strconv.Itoa(start + size)
	}
	return items[start : start+size], next, nil
}

// wildcard reports whether s matches an EC2 filter value: * is any run of characters,
// ? any one character, anything else itself.
func wildcard(pattern, s string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == s
	}
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
