// Package platform holds what the operator publishes to customers (egress networks, SPF
// include, relay hosts, bounce domain) and tells every tenant when it changes: at start-up
// the configured facts are compared with the last stored ones, and a difference appends a
// platform.changed event to every tenant's stream, in the transaction that stores the new
// facts (so several processes starting at once report it once).
package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/event"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/store/dbsqlc"
)

// Facts are what the operator publishes.
type Facts = event.PlatformFacts

// Normalize sorts lists and makes nil lists empty, so equal facts compare equal.
func Normalize(f Facts) Facts {
	f.EgressNetworks = append([]string{}, f.EgressNetworks...)
	slices.Sort(f.EgressNetworks)
	f.RelayHosts = append([]event.RelayHost{}, f.RelayHosts...)
	slices.SortFunc(f.RelayHosts, func(a, b event.RelayHost) int {
		if a.Host != b.Host {
			if a.Host < b.Host {
				return -1
			}
			return 1
		}
		return a.Port - b.Port
	})
	return f
}

// Changed names the fields of a and b that differ.
func Changed(a, b Facts) []string {
	var out []string
	if !slices.Equal(a.EgressNetworks, b.EgressNetworks) {
		out = append(out, "egress_networks")
	}
	if a.SPFInclude != b.SPFInclude {
		out = append(out, "spf_include")
	}
	if !reflect.DeepEqual(a.RelayHosts, b.RelayHosts) {
		out = append(out, "relay_hosts")
	}
	if a.BounceDomain != b.BounceDomain {
		out = append(out, "bounce_domain")
	}
	return out
}

// Publish stores the current facts and, when they differ from the stored ones, appends
// platform.changed to every tenant's stream. It returns the changed fields (nil on the
// first run, when there is nothing to compare with).
func Publish(ctx context.Context, db store.DB, current Facts, now time.Time) ([]string, error) {
	current = Normalize(current)
	var changed []string
	err := store.WithTx(ctx, db, func(tx pgx.Tx) error {
		q := dbsqlc.New(tx)
		raw, err := q.PlatformFactsGet(ctx)
		first := errors.Is(err, pgx.ErrNoRows)
		if err != nil && !first {
			return fmt.Errorf("error reading platform facts: %w", err)
		}
		var previous Facts
		if !first {
			if err := json.Unmarshal(raw, &previous); err != nil {
				return fmt.Errorf("error decoding platform facts: %w", err)
			}
			previous = Normalize(previous)
			if changed = Changed(previous, current); len(changed) == 0 {
				return nil
			}
		}
		b, err := json.Marshal(current)
		if err != nil {
			return fmt.Errorf("error encoding platform facts: %w", err)
		}
		if err := q.PlatformFactsPut(ctx, b); err != nil {
			return fmt.Errorf("error storing platform facts: %w", err)
		}
		if first {
			return nil
		}
		_, err = event.AppendForAllTenants(ctx, tx, event.PlatformChangedData{Previous: previous, Current: current, Changed: changed}, now)
		return err
	})
	return changed, err
}
