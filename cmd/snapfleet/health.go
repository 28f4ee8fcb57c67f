package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/snapfleet/snapfleet/worker"
)

// longPoll is the longest a worker's receive waits for messages (SQS's maximum, the
// worker's default). Between two receives a live worker also sleeps at most 30 s after a
// failed one, so three long polls bound the quiet time of a loop that still runs.
const longPoll = 20 * time.Second

// health is what `work --health-addr` serves: /healthz (the receive loop is alive),
// /readyz (the queue was reached; not shutting down) and /metrics (Prometheus). It learns
// what the worker does from worker.Worker.Observe.
type health struct {
	now func() time.Time
	// liveFor is how long the loop may go without a receive returning or a job settling
	// before /healthz fails.
	liveFor time.Duration

	mu       sync.Mutex
	last     time.Time // last receive returned or message settled
	reached  bool      // a receive succeeded
	stopping bool      // SIGINT/SIGTERM: draining

	reg      *prometheus.Registry
	jobs     *prometheus.CounterVec
	dead     *prometheus.CounterVec
	inFlight prometheus.Gauge
	lastPoll prometheus.Gauge
}

// newHealth returns the health state of a worker whose jobs wait for their rate limiter
// at most visibility/4 (then they are snoozed back, and settle): a worker whose every slot
// paces still settles within liveFor.
func newHealth(visibility time.Duration) *health {
	h := &health{
		now:     time.Now,
		liveFor: 3*longPoll + visibility/4,
		reg:     prometheus.NewRegistry(),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "snapfleet_jobs_processed_total",
			Help: "Jobs handled to an outcome (success, skipped, dead_lettered, snoozed, retry; released: handed back at shutdown), by kind.",
		}, []string{"kind", "outcome"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "snapfleet_dead_letters_total",
			Help: "Jobs this worker sent to the dead-letter queue, by reason.",
		}, []string{"reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "snapfleet_jobs_in_flight",
			Help: "Jobs received and not yet settled.",
		}),
		lastPoll: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "snapfleet_queue_last_receive_timestamp_seconds",
			Help: "When a receive from the jobs queue last returned (Unix time).",
		}),
	}
	h.last = h.now()
	h.reg.MustRegister(h.jobs, h.dead, h.inFlight, h.lastPoll,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return h
}

// observe is the worker's Observe.
func (h *health) observe(o worker.Observation) {
	now := h.now()
	h.mu.Lock()
	h.last = now
	if o.Polled && o.Err == nil {
		h.reached = true
	}
	h.mu.Unlock()
	if o.Polled {
		h.inFlight.Add(float64(o.Received))
		h.lastPoll.Set(float64(now.UnixNano()) / 1e9)
		return
	}
	h.inFlight.Dec()
	kind := o.Kind
	if kind == "" {
		kind = "unknown" // the message did not decode
	}
	h.jobs.WithLabelValues(kind, o.Outcome).Inc()
	if o.Outcome == "dead_lettered" && o.Err == nil {
		h.dead.WithLabelValues(o.Reason).Inc()
	}
}

// shutdown marks the worker as draining: /readyz fails from now on.
func (h *health) shutdown() {
	h.mu.Lock()
	h.stopping = true
	h.mu.Unlock()
}

func (h *health) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		quiet, stopping := h.now().Sub(h.last), h.stopping
		h.mu.Unlock()
		// Draining is alive: the loop stopped receiving on purpose.
		if quiet > h.liveFor && !stopping {
			http.Error(w, fmt.Sprintf("no receive and no job settled for %s (limit %s)", quiet.Round(time.Second), h.liveFor), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		reached, stopping := h.reached, h.stopping
		h.mu.Unlock()
		switch {
		case stopping:
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
		case !reached:
			http.Error(w, "the jobs queue has not been reached yet", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{Registry: h.reg}))
	return mux
}

// checkAddr checks a --health-addr value (HOST:PORT, HOST may be empty).
func checkAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef("--health-addr: %q is not HOST:PORT (e.g. :8080): %v", addr, err)
	}
	return nil
}

// serve listens on addr and serves h until ctx is cancelled (then /readyz fails) and stop
// is called (then the server closes).
func (h *health) serve(ctx context.Context, addr string, log zerolog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on --health-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h.handler(), ReadHeaderTimeout: 5 * time.Second}
	log.Info().Str("addr", ln.Addr().String()).Msg("serving /healthz, /readyz and /metrics")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("health server")
		}
	}()
	unwatch := context.AfterFunc(ctx, h.shutdown)
	return func() {
		unwatch()
		h.shutdown()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, nil
}
