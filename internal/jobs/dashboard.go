package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"
)

// DashboardPrefix is where the job dashboard is mounted.
const DashboardPrefix = "/riverui"

// NewDashboard returns River UI for client's database, serving under DashboardPrefix. It
// does no authentication: the caller mounts it behind the operator's credential.
//
// River UI's background services (caches of the job counts per state, which count
// river_job every 10 seconds or so, and exactly every 30 seconds to 15 minutes) start with
// the dashboard's first request, not with the process: started with it, they counted a
// table of tens of thousands of jobs every few seconds although nobody looked, tens of
// milliseconds of database CPU each time, which showed in delivery latency. Once started
// they run until ctx ends.
func NewDashboard(ctx context.Context, client *river.Client[pgx.Tx], logger *slog.Logger) (http.Handler, error) {
	if logger == nil {
		logger = slog.Default()
	}
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger,
		Prefix:    DashboardPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("error creating job dashboard: %w", err)
	}
	return &dashboard{h: h, ctx: ctx, logger: logger}, nil
}

// dashboard starts River UI's handler on its first request.
type dashboard struct {
	h      *riverui.Handler
	ctx    context.Context
	logger *slog.Logger
	once   sync.Once
	err    error
}

func (d *dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.once.Do(func() {
		if d.err = d.h.Start(d.ctx); d.err != nil {
			d.logger.Error("error starting the job dashboard", "error", d.err)
		}
	})
	if d.err != nil {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the job dashboard could not start; see the server's log"}`))
		return
	}
	d.h.ServeHTTP(w, r)
}
