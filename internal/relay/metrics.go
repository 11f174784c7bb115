package relay

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the relay host, registered on the process's registry.
type metrics struct {
	connections *prometheus.CounterVec
	refused     *prometheus.CounterVec
	active      prometheus.Gauge
	auth        *prometheus.CounterVec
	messages    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendwerk_smtp_connections_total",
			Help: "SMTP relay connections accepted, by listener (submission, smtps)."}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendwerk_smtp_connections_refused_total",
			Help: "SMTP relay connections refused before the banner, by reason."}, []string{"reason"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sendwerk_smtp_connections_active",
			Help: "SMTP relay connections open now."}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendwerk_smtp_auth_total",
			Help: "SMTP relay logins by result (ok, unknown_user, wrong_password, revoked, throttled, error)."}, []string{"result"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendwerk_smtp_messages_total",
			Help: "Messages over SMTP by result (accepted, rejected, deferred, too_large, aborted, unavailable, error)."}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connections, m.refused, m.active, m.auth, m.messages} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("error registering smtp metrics: %w", err)
		}
	}
	return m, nil
}
