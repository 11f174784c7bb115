package sendingdomain

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	checks        *prometheus.CounterVec
	results       *prometheus.CounterVec
	statusChanges *prometheus.CounterVec
	inFlight      prometheus.Gauge
	scheduled     prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendwerk_domain_checks_total", Help: "Domain checks by trigger (manual, scheduled) and outcome (pass, fail, temperror).",
		}, []string{"trigger", "outcome"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendwerk_domain_check_results_total", Help: "Results of the single checks of domain checks, by check (ownership, dkim, spf, dmarc), status (pass, fail, temperror) and stable code.",
		}, []string{"check", "status", "code"}),
		statusChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendwerk_domain_status_changes_total", Help: "Domain status changes by new status.",
		}, []string{"status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sendwerk_domain_checks_in_flight", Help: "Domain checks querying DNS in this process now.",
		}),
		scheduled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendwerk_domain_checks_scheduled_total", Help: "Check jobs the scheduler enqueued.",
		}),
	}
}

// Collectors are the service's Prometheus metrics, for the server's registry.
func (s *Service) Collectors() []prometheus.Collector {
	m := s.metrics
	return []prometheus.Collector{m.checks, m.results, m.statusChanges, m.inFlight, m.scheduled}
}
