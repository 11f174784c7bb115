package sendingdomain

import (
	"context"
	"fmt"
	"time"

	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// ListDue returns up to limit domains of any tenant whose check is due at now, most overdue
// first. It only reads (the scheduler claims due domains itself) and needs neither keys nor
// a resolver, so operator tools call it without a Service.
func ListDue(ctx context.Context, db store.DB, now time.Time, limit int) ([]*Domain, error) {
	rows, err := dbsqlc.New(db).SendingDomainListDue(ctx, dbsqlc.SendingDomainListDueParams{Now: now, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("error listing due domains: %w", err)
	}
	return fromRows(rows)
}
