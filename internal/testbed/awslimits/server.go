package awslimits

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snapfleet/snapfleet/internal/testbed/relay"
)

// Options tune a Server.
type Options struct {
	// Limits per bucket; DefaultLimits when nil.
	Limits map[string]Limit
	// PerVolume is the per-volume snapshot interval; PerVolumeInterval when 0, off when < 0.
	PerVolume time.Duration
	// Now is the Limiter's clock; time.Now when nil.
	Now func() time.Time
	// Latency is added to every EC2 call, plus a uniform random part up to Jitter.
	Latency, Jitter time.Duration
	// SSMLatency adds Latency and Jitter to SSM calls too (Run Command).
	SSMLatency bool
	// FaultRate is the fraction of allowed EC2 calls answered InternalError (HTTP 500)
	// without being forwarded; drawn from a generator seeded with Seed.
	FaultRate float64
	Seed      uint64
	// DefaultAccount is the account of access keys not issued by an AssumeRole seen by the
	// server; moto's default 123456789012 when empty.
	DefaultAccount string
}

// Done counts the calls of one action in one account and region that the target
// answered with HTTP 200: operations that took effect.
type Done struct {
	Account, Region, Action string
}

// Server is a running limits-faithful endpoint. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:40123.
	URL string
	// Limiter is the server's admission control; its Stats are the measurements.
	Limiter *Limiter

	o      Options
	target *url.URL
	client *http.Client
	srv    *http.Server

	mu       sync.Mutex
	rng      *rand.Rand
	keys     map[string]string // access key id → account
	done     map[Done][]time.Time
	faults   int
	assumes  map[string]int // account → AssumeRole calls
	calls    map[string]int // "service:Action" → calls received, throttled or not
	upstream map[string]Upstream
}

// New starts an endpoint in front of target (moto's URL) on addr ("127.0.0.1:0" for a
// free loopback port).
func New(target, addr string, o Options) (*Server, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("awslimits: target %q is not an absolute URL", target)
	}
	if o.DefaultAccount == "" {
		o.DefaultAccount = "123456789012"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("awslimits: listening on %s: %w", addr, err)
	}
	s := &Server{
		URL:      "http://" + ln.Addr().String(),
		Limiter:  NewLimiter(o.Limits, o.PerVolume, o.Now),
		o:        o,
		target:   u,
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 30 * time.Second}},
		rng:      rand.New(rand.NewPCG(o.Seed, o.Seed^0x11a175)),
		keys:     map[string]string{},
		done:     map[Done][]time.Time{},
		assumes:  map[string]int{},
		calls:    map[string]int{},
		upstream: map[string]Upstream{},
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() {
	_ = s.srv.Close()
	s.client.CloseIdleConnections()
}

// Done returns the operations that took effect, per account, region and action.
func (s *Server) Done() map[Done]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[Done]int, len(s.done))
	for k, v := range s.done {
		m[k] = len(v)
	}
	return m
}

// DoneBy returns the operations that took effect before t (on the server's clock), per
// account, region and action.
func (s *Server) DoneBy(t time.Time) map[Done]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[Done]int, len(s.done))
	for k, v := range s.done {
		n := 0
		for _, at := range v {
			if at.Before(t) {
				n++
			}
		}
		m[k] = n
	}
	return m
}

// Now is the server's clock.
func (s *Server) Now() time.Time { return s.Limiter.now() }

// DoneAt returns when each operation of k took effect (on the server's clock), in order.
func (s *Server) DoneAt(k Done) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.done[k])
}

// AssumeRoles returns the AssumeRole calls seen, per account of the role.
func (s *Server) AssumeRoles() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.assumes)
}

// Calls returns every call received, per "service:Action" (e.g. "ec2:DescribeSnapshots"),
// whatever its answer: throttled, refused and faulted calls count as the client made them.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// Upstream is the time the target took to answer the calls of one service and action.
type Upstream struct {
	Calls int
	Total time.Duration
}

// Upstream returns the target's answer times per "service:action" (e.g.
// "ec2:CreateSnapshot"); the endpoint's own latency is not included.
func (s *Server) Upstream() map[string]Upstream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.upstream)
}

func (s *Server) timeUpstream(k string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.upstream[k]
	u.Calls++
	u.Total += d
	s.upstream[k] = u
}

// Faults is the number of injected InternalError answers.
func (s *Server) Faults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Reset starts a new measuring window: full buckets, zero counts. Learned access keys
// are kept.
func (s *Server) Reset() {
	s.Limiter.Reset()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = map[Done][]time.Time{}
	s.assumes = map[string]int{}
	s.calls = map[string]int{}
	s.faults = 0
	s.upstream = map[string]Upstream{}
}

var credRE = regexp.MustCompile(`Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/aws4_request`)

// scope reads the access key, region and service from a SigV4 Authorization header.
func scope(r *http.Request) (key, region, service string) {
	m := credRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return "", "", ""
	}
	return m[1], m[2], m[3]
}

func (s *Server) accountOf(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.keys[key]; ok {
		return a
	}
	return s.o.DefaultAccount
}

var (
	roleAccountRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):role/`)
	accessKeyRE   = regexp.MustCompile(`<AccessKeyId>([^<]+)</AccessKeyId>`)
)

// ServeHTTP limits EC2 calls, learns AssumeRole keys, and forwards the rest to the target.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "awslimits: reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	form := url.Values{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, _ = url.ParseQuery(string(body))
	}
	for k, v := range r.URL.Query() {
		form[k] = v
	}
	action := form.Get("Action")
	if t := r.Header.Get("X-Amz-Target"); action == "" && t != "" { // JSON protocols (SSM, SQS)
		action = t[strings.LastIndexByte(t, '.')+1:]
	}
	key, region, service := scope(r)
	account := s.accountOf(key)
	s.count(service + ":" + action)

	if service == "ec2" || (service == "ssm" && s.o.SSMLatency) {
		if d := s.o.Latency + s.jitter(); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
	}
	if service == "ec2" {
		switch s.Limiter.Admit(account, region, BucketOf(action, form), form.Get("VolumeId")) {
		case Throttle:
			writeError(w, "RequestLimitExceeded", http.StatusServiceUnavailable, "Request limit exceeded.")
			return
		case PerVolume:
			writeError(w, "SnapshotCreationPerVolumeRateExceeded", http.StatusBadRequest,
				"The maximum per volume CreateSnapshot request rate has been exceeded. Use an increasing or variable sleep interval between requests.")
			return
		}
		if s.fault() {
			writeError(w, "InternalError", http.StatusInternalServerError, "An internal error has occurred (injected by awslimits).")
			return
		}
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Minute)
	defer cancel()
	fstart := time.Now()
	resp, respBody, err := relay.Forward(ctx, s.client, s.target, r, body)
	s.timeUpstream(service+":"+action, time.Since(fstart))
	if err != nil {
		http.Error(w, "awslimits: forwarding: "+err.Error(), http.StatusBadGateway)
		return
	}
	if resp.StatusCode == http.StatusOK {
		s.record(service, account, region, action, form, respBody)
	}
	relay.Reply(w, resp, respBody)
}

func (s *Server) count(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[k]++
}

func (s *Server) jitter() time.Duration {
	if s.o.Jitter <= 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Duration(s.rng.Int64N(int64(s.o.Jitter)))
}

func (s *Server) fault() bool {
	if s.o.FaultRate <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rng.Float64() < s.o.FaultRate {
		s.faults++
		return true
	}
	return false
}

// record counts a call that took effect; an AssumeRole teaches the server its key.
func (s *Server) record(service, account, region, action string, form url.Values, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch service {
	case "ec2", "ssm":
		k := Done{account, region, action}
		s.done[k] = append(s.done[k], s.Limiter.now())
	case "sts":
		if action != "AssumeRole" {
			return
		}
		m := roleAccountRE.FindStringSubmatch(form.Get("RoleArn"))
		k := accessKeyRE.FindSubmatch(body)
		if m == nil || k == nil {
			return
		}
		s.keys[string(k[1])] = m[1]
		s.assumes[m[1]]++
	}
}

// writeError answers as EC2 answers a failed call.
func writeError(w http.ResponseWriter, code string, status int, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%08x-0000-0000-0000-000000000000</RequestID></Response>`,
		code, msg, rand.Uint32())
}
