// Package faultproxy is a reverse proxy that sits in front of an EC2 endpoint (moto in
// tests and benchmarks) and makes calls fail as AWS makes them fail: throttling codes,
// 5xx errors, added latency (before a call is forwarded, or after it took effect and
// before its response), timeouts, responses lost after the call took effect, and outages
// in which connections are reset. Rules are keyed by the EC2 Query-protocol Action read
// from the form body, and optionally by the region the call is signed for; they can be
// changed while calls are in flight, and pick their calls deterministically (every Nth,
// or a seeded random fraction) so tests are not flaky. The proxy counts calls per action
// for assertions.
//
// Point an SDK client or a snapfleet process at it with AWS_ENDPOINT_URL_EC2 (Env); other
// services keep their own endpoints.
package faultproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfleet/snapfleet/internal/testbed/relay"
)

// Fault is what the proxy does to a call a rule picks, besides its latency.
type Fault int

// Faults.
const (
	// None forwards the call (a rule with only Latency).
	None Fault = iota
	// Throttle answers with an EC2 error without forwarding: code RequestLimitExceeded
	// and HTTP 503 unless the rule sets Code and Status (e.g.
	// SnapshotCreationPerVolumeRateExceeded, which AWS sends with 400).
	Throttle
	// Error answers with an EC2 error without forwarding: InternalError and HTTP 500
	// unless the rule sets Code and Status.
	Error
	// Timeout holds the call without forwarding it until the client gives up, Hold
	// passes (default one minute) or the proxy closes; then it resets the connection.
	Timeout
	// LoseResponse forwards the call, so it takes effect, then answers InternalError
	// with HTTP 500 instead of the real response.
	LoseResponse
	// DropResponse forwards the call, so it takes effect, then resets the connection
	// without answering.
	DropResponse
	// Outage resets the connection without forwarding: the client sees a network error.
	Outage
)

var faultNames = [...]string{"none", "throttle", "error", "timeout", "lose_response", "drop_response", "outage"}

func (f Fault) String() string {
	if int(f) < len(faultNames) {
		return faultNames[f]
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// All is the Action of a rule that applies to every action.
const All = ""

// Rule picks calls and says what to do with them.
type Rule struct {
	// Action is the EC2 action the rule applies to (e.g. "CreateSnapshot"); All for
	// every action.
	Action string
	// Region, when set, limits the rule to calls signed for that region (the SigV4
	// credential scope of the Authorization header): one account-region fails while the
	// others answer.
	Region string
	// Every picks the Nth, 2Nth, ... call that matches the rule (2 = every other call);
	// 0 or 1 picks every call unless Rate is set.
	Every int
	// Rate, when Every is 0 and Rate > 0, picks each matching call with this probability,
	// drawn from the proxy's seeded generator.
	Rate float64
	// Limit, when > 0, ends the rule after it picked this many calls.
	Limit int
	// For, when > 0, ends the rule this long after it was added, or, with FromFirstPick,
	// after it first picked a call: an outage that begins with the first call of a
	// process, however long the process took to start.
	For           time.Duration
	FromFirstPick bool

	// Latency is added before a picked call is forwarded or answered.
	Latency time.Duration
	// LatencyAfter is added after a picked call was forwarded, so it has taken effect,
	// and before its response is written: a slow answer. A client that gives up (or dies)
	// meanwhile gets no answer, but the call is done. Ignored for faults that do not
	// forward.
	LatencyAfter time.Duration
	// Fault is what happens to a picked call after the latency.
	Fault Fault
	// Code and Status override the error of Throttle and Error.
	Code   string
	Status int
	// Hold bounds a Timeout; default one minute.
	Hold time.Duration
}

// RuleID names an added rule, for Remove.
type RuleID int

// Count is what the proxy saw of one action.
type Count struct {
	// Calls is every call received.
	Calls int
	// Forwarded is the calls sent to the target that it answered (lost responses too).
	Forwarded int
	// Injected is the calls whose answer was a fault (throttle, error, timeout, lost or
	// dropped response, outage).
	Injected int
}

// Options tune a proxy.
type Options struct {
	// Seed seeds the generator of Rate rules; the same seed and the same call order give
	// the same picks.
	Seed uint64
}

// Proxy is a running fault-injecting proxy. Its methods are safe for concurrent use.
type Proxy struct {
	// URL is the proxy's base URL, e.g. http://127.0.0.1:40123.
	URL string

	target  *url.URL
	client  *http.Client
	srv     *http.Server
	ln      net.Listener
	closing chan struct{}
	once    sync.Once

	mu     sync.Mutex
	rng    *rand.Rand
	rules  []*rule
	nextID RuleID
	counts map[string]*Count
	picked map[RuleID]int
	// firstPick is when each rule first picked a call.
	firstPick map[RuleID]time.Time
	// passed is when a call was first let through without a fault.
	passed time.Time
}

type rule struct {
	Rule
	id      RuleID
	until   time.Time
	matched int
	picked  int
}

// New starts a proxy for target (e.g. moto's endpoint) on a free loopback port.
func New(target string, o Options) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q is not an absolute URL", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listening on loopback: %w", err)
	}
	p := &Proxy{
		URL:     "http://" + ln.Addr().String(),
		target:  u,
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}},
		ln:      ln,
		closing: make(chan struct{}),
		rng:     rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed)),
		counts:  map[string]*Count{},
		picked:  map[RuleID]int{},

		firstPick: map[RuleID]time.Time{},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Start runs a proxy for target for the lifetime of t, with seed 1.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := New(target, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Close stops the proxy: held calls are released and connections closed.
func (p *Proxy) Close() {
	p.once.Do(func() {
		close(p.closing)
		_ = p.srv.Close()
		p.client.CloseIdleConnections()
	})
}

// Env is the environment that sends a process's EC2 calls through the proxy.
func (p *Proxy) Env() []string { return []string{"AWS_ENDPOINT_URL_EC2=" + p.URL} }

// Add adds r after the rules already there and returns its id.
func (p *Proxy) Add(r Rule) RuleID {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	nr := &rule{Rule: r, id: p.nextID}
	if r.For > 0 && !r.FromFirstPick {
		nr.until = time.Now().Add(r.For)
	}
	p.rules = append(p.rules, nr)
	return nr.id
}

// Remove removes a rule; removing one that is gone does nothing.
func (p *Proxy) Remove(id RuleID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.rules {
		if r.id == id {
			p.rules = append(p.rules[:i], p.rules[i+1:]...)
			return
		}
	}
}

// Reset removes every rule; counts are kept.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Count returns what the proxy saw of action; All sums every action.
func (p *Proxy) Count(action string) Count {
	p.mu.Lock()
	defer p.mu.Unlock()
	if action != All {
		if c := p.counts[action]; c != nil {
			return *c
		}
		return Count{}
	}
	var sum Count
	for _, c := range p.counts {
		sum.Calls += c.Calls
		sum.Forwarded += c.Forwarded
		sum.Injected += c.Injected
	}
	return sum
}

// Picked returns how many calls rule id has picked so far, also once it has ended.
func (p *Proxy) Picked(id RuleID) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.picked[id]
}

// Counts returns the counts of every action seen.
func (p *Proxy) Counts() map[string]Count {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]Count, len(p.counts))
	for a, c := range p.counts {
		m[a] = *c
	}
	return m
}

// plan is what to do with one call: the sums of the latencies of the rules that picked
// it, and the fault of the first of them that has one.
type plan struct {
	latency, after time.Duration
	rule           *Rule
}

// decide counts the call and applies the rules to it.
func (p *Proxy) decide(action, region string) plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counts[action]
	if c == nil {
		c = &Count{}
		p.counts[action] = c
	}
	c.Calls++
	now := time.Now()
	var pl plan
	kept := p.rules[:0]
	for _, r := range p.rules {
		if (!r.until.IsZero() && now.After(r.until)) || (r.Limit > 0 && r.picked >= r.Limit) {
			continue // expired: dropped
		}
		kept = append(kept, r)
		if (r.Action != All && r.Action != action) || (r.Region != "" && r.Region != region) {
			continue
		}
		r.matched++
		switch {
		case r.Every > 1:
			if r.matched%r.Every != 0 {
				continue
			}
		case r.Every == 0 && r.Rate > 0:
			if p.rng.Float64() >= r.Rate {
				continue
			}
		}
		r.picked++
		p.picked[r.id]++
		if _, ok := p.firstPick[r.id]; !ok {
			p.firstPick[r.id] = now
			if r.For > 0 && r.FromFirstPick {
				r.until = now.Add(r.For)
			}
		}
		pl.latency += r.Latency
		pl.after += r.LatencyAfter
		if pl.rule == nil && r.Fault != None {
			rr := r.Rule
			pl.rule = &rr
		}
	}
	for i := len(kept); i < len(p.rules); i++ {
		p.rules[i] = nil
	}
	p.rules = kept
	if pl.rule != nil {
		c.Injected++
	} else if p.passed.IsZero() {
		p.passed = now
	}
	return pl
}

// FirstPick returns when rule id first picked a call; zero if it never did.
func (p *Proxy) FirstPick(id RuleID) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstPick[id]
}

// FirstPassed returns when the proxy first let a call through without a fault; zero if it
// never did. A test asserts with it that nothing got through while a rule held, without
// racing the rule's end.
func (p *Proxy) FirstPassed() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.passed
}

func (p *Proxy) forwarded(action string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[action].Forwarded++
}

// actionOf reads the Query-protocol Action from the URL or the form body, and restores
// the body.
func actionOf(r *http.Request) (string, []byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "", nil, fmt.Errorf("reading request body: %w", err)
	}
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if a := r.URL.Query().Get("Action"); a != "" {
		return a, body, nil
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if form, err := url.ParseQuery(string(body)); err == nil {
			return form.Get("Action"), body, nil
		}
	}
	return "", body, nil
}

// regionOf reads the region from the SigV4 credential scope of the Authorization header
// (Credential=KEY/DATE/REGION/SERVICE/aws4_request); "" when the call is not signed so.
func regionOf(r *http.Request) string {
	_, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	if parts := strings.Split(cred, "/"); len(parts) == 5 {
		return parts[2]
	}
	return ""
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	action, body, err := actionOf(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pl := p.decide(action, regionOf(r))
	if pl.latency > 0 && !p.wait(r.Context(), pl.latency) {
		reset(w)
		return
	}
	fault := None
	if pl.rule != nil {
		fault = pl.rule.Fault
	}
	switch fault {
	case Throttle:
		writeError(w, pl.rule, "RequestLimitExceeded", http.StatusServiceUnavailable, "Request limit exceeded (injected by faultproxy).")
		return
	case Error:
		writeError(w, pl.rule, "InternalError", http.StatusInternalServerError, "An internal error has occurred (injected by faultproxy).")
		return
	case Timeout:
		hold := pl.rule.Hold
		if hold <= 0 {
			hold = time.Minute
		}
		p.wait(r.Context(), hold)
		reset(w)
		return
	case Outage:
		reset(w)
		return
	}

	// Forward. The call is not tied to the client's connection: a call that reached
	// AWS takes effect even when the caller has gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Minute)
	defer cancel()
	resp, respBody, err := relay.Forward(ctx, p.client, p.target, r, body)
	if err != nil {
		http.Error(w, "faultproxy: forwarding: "+err.Error(), http.StatusBadGateway)
		return
	}
	p.forwarded(action)
	if pl.after > 0 && !p.wait(r.Context(), pl.after) {
		reset(w)
		return
	}
	switch fault {
	case LoseResponse:
		writeError(w, &Rule{}, "InternalError", http.StatusInternalServerError, "An internal error has occurred (the response was lost by faultproxy).")
		return
	case DropResponse:
		reset(w)
		return
	}
	relay.Reply(w, resp, respBody)
}

// wait sleeps for d; false when the client went away or the proxy closed first.
func (p *Proxy) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-p.closing:
		return false
	}
}

// writeError answers as EC2 answers a failed call.
func writeError(w http.ResponseWriter, r *Rule, code string, status int, msg string) {
	if r.Code != "" {
		code, msg = r.Code, "Injected by faultproxy."
		if r.Status == 0 && r.Fault == Throttle {
			status = http.StatusBadRequest // EC2's rate codes other than RequestLimitExceeded come with 400
		}
	}
	if r.Status != 0 {
		status = r.Status
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>`,
		code, msg, requestID())
}

func requestID() string {
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rand.Uint32(), rand.Uint32N(1<<16), rand.Uint32N(1<<16), rand.Uint32N(1<<16), rand.Uint64N(1<<48))
}

// reset closes the client's connection without an answer, with a TCP reset where it can.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
