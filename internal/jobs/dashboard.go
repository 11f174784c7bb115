package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"
)

// DashboardPrefix is where the job dashboard is mounted.
const DashboardPrefix = "/riverui"

// NewDashboard returns River UI for client's database, serving under DashboardPrefix. It
// does no authentication: the caller mounts it behind the operator's credential. Its
// background services (query caches) run until ctx ends.
func NewDashboard(ctx context.Context, client *river.Client[pgx.Tx], logger *slog.Logger) (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger,
		Prefix:    DashboardPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("error creating job dashboard: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("error starting job dashboard: %w", err)
	}
	return h, nil
}
