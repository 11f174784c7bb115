// Package metrics holds the Prometheus metrics that answer "is mail flowing" and do not
// belong to one concept: delivery outcomes and latency (an observer the deliver worker calls)
// and the depth of the job queues (read from PostgreSQL when scraped). Concept-local metrics
// stay with their concept (relay, sendingdomain, httpapi).
package metrics

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sendwerk/sendwerk/internal/delivery"
)

// Deliveries counts delivery attempts by outcome and times them. It is a delivery.Observer.
type Deliveries struct {
	attempts *prometheus.CounterVec
	duration *prometheus.HistogramVec
	latency  prometheus.Histogram
	NowFunc  func() time.Time
}

var _ delivery.Observer = (*Deliveries)(nil)

// NewDeliveries registers the delivery metrics on reg.
func NewDeliveries(reg prometheus.Registerer) (*Deliveries, error) {
	d := &Deliveries{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendwerk_delivery_attempts_total",
			Help: "Delivery attempts by outcome class (delivered, temporary, permanent, config), stable code (delivered, smtp.rejected, tcp.refused, …) and the upstream's SMTP reply code (empty without a reply)."},
			[]string{"class", "code", "smtp_code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sendwerk_delivery_attempt_duration_seconds",
			Help:    "Time one delivery attempt spent with the upstream (connecting or reusing a pooled connection, sending, the reply), by outcome class.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"class"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sendwerk_delivery_latency_seconds",
			Help:    "From a message being due (accepted, or its send_at) to the upstream accepting it, retries included; delivered messages only.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}}),
		NowFunc: time.Now,
	}
	for _, c := range []prometheus.Collector{d.attempts, d.duration, d.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// ObserveAttempt records one attempt.
func (d *Deliveries) ObserveAttempt(o delivery.Outcome, took time.Duration, readyAt time.Time) {
	smtpCode := ""
	if o.SMTPCode != 0 {
		smtpCode = strconv.Itoa(o.SMTPCode)
	}
	d.attempts.WithLabelValues(string(o.Class), o.Code, smtpCode).Inc()
	d.duration.WithLabelValues(string(o.Class)).Observe(took.Seconds())
	if o.Class == delivery.ClassDelivered {
		d.latency.Observe(d.NowFunc().Sub(readyAt).Seconds())
	}
}

// Handler serves reg's metrics. With a token, requests must carry it as a bearer token
// (compared in constant time); others get 401.
func Handler(reg *prometheus.Registry, token string) http.Handler {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sendwerk-metrics"`)
			http.Error(w, "metrics need the bearer token of SENDWERK_METRICS_TOKEN", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// NewSubmitGroups registers the histogram of group-commit sizes on reg and returns the
// function the message service calls with each group's size.
func NewSubmitGroups(reg prometheus.Registerer) (func(n int), error) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sendwerk_submit_group_size",
		Help:    "Single submissions (REST and SMTP) committed by one group-commit transaction; _sum / _count is the mean group.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 200}})
	if err := reg.Register(h); err != nil {
		return nil, err
	}
	return func(n int) { h.Observe(float64(n)) }, nil
}
