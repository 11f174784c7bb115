// Package reseal re-encrypts every stored secret under the current secret key, after an
// operator changed SENDWERK_SECRET_KEY (the old key moved to SENDWERK_SECRET_KEY_PREVIOUS).
//
// Progress lives in the rows themselves: a secret whose key id is the current key's is done.
// So a run is idempotent (a second run finds nothing to do) and resumable (an interrupted run
// left only whole batches re-sealed; the next run picks up the rest).
package reseal

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/sendingdomain"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/webhook"
)

// Column is one kind of sealed secret: a ciphertext column beside the column naming the key
// that sealed it, in a table keyed by a text id.
type Column struct {
	// Name is how reports call it, e.g. "connector SMTP passwords".
	Name string
	// Table, ID, KeyID and Ciphertext are SQL identifiers.
	Table, ID, KeyID, Ciphertext string
	// ContextFunc is the secret.Box context the owning package seals the row's secret with.
	ContextFunc func(id string) string
}

// Columns is every sealed secret Sendwerk stores. A new one is a line here; TestColumnsCoverSchema
// fails when the schema has a *_key_id column this table lacks.
var Columns = []Column{
	{Name: "connector SMTP passwords", Table: "connectors", ID: "id", KeyID: "smtp_password_key_id", Ciphertext: "smtp_password_ciphertext", ContextFunc: connector.PasswordContext},
	{Name: "DKIM private keys", Table: "sending_domain_dkim_keys", ID: "id", KeyID: "private_key_id", Ciphertext: "private_key", ContextFunc: sendingdomain.DKIMKeyContext},
	{Name: "webhook signing secrets", Table: "webhooks", ID: "id", KeyID: "secret_key_id", Ciphertext: "secret", ContextFunc: webhook.SecretContext},
	{Name: "previous webhook signing secrets (rotation overlap)", Table: "webhooks", ID: "id", KeyID: "previous_secret_key_id", Ciphertext: "previous_secret", ContextFunc: webhook.SecretContext},
}

// DefaultBatchSize is how many rows one transaction re-seals: each batch holds its rows'
// locks only briefly, so a running server is not held up.
const DefaultBatchSize = 100

// Report is what a run found and did for one column.
type Report struct {
	Column Column
	// Current were already sealed under the current key.
	Current int
	// Resealed were re-sealed now (with DryRun: would be).
	Resealed int
	// Failed could not be opened with any configured key; FailedIDs names the first few.
	Failed    int
	FailedIDs []string
}

// Options tune a run.
type Options struct {
	// DryRun opens every secret that is not current, to prove it can be re-sealed, and
	// writes nothing.
	DryRun bool
	// Columns defaults to Columns.
	Columns []Column
	// BatchSize is how many rows one transaction re-seals; 0 means DefaultBatchSize.
	BatchSize int
	// OnBatchFunc, when set, learns the column's report after each committed batch
	// (progress output).
	OnBatchFunc func(Report)
}

// Run re-seals every secret of every column under box's current key. Rows whose secret no
// configured key opens are counted as failed and left as they are; the run goes on.
func Run(ctx context.Context, db store.DB, box *secret.Box, opts *Options) ([]Report, error) {
	if opts == nil {
		opts = &Options{}
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	cols := opts.Columns
	if cols == nil {
		cols = Columns
	}
	reports := make([]Report, 0, len(cols))
	for _, c := range cols {
		r, err := runColumn(ctx, db, box, c, opts)
		if err != nil {
			return reports, fmt.Errorf("error re-sealing %s: %w", c.Name, err)
		}
		reports = append(reports, r)
	}
	return reports, nil
}

// runColumn walks the column's rows in id order, a batch per transaction.
func runColumn(ctx context.Context, db store.DB, box *secret.Box, c Column, opts *Options) (Report, error) {
	r := Report{Column: c}
	if err := db.QueryRow(ctx, c.countCurrentSQL(), box.CurrentKeyID()).Scan(&r.Current); err != nil {
		return r, fmt.Errorf("error counting current secrets: %w", err)
	}
	after := ""
	for {
		var n int
		err := store.WithTx(ctx, db, func(tx pgx.Tx) error {
			var err error
			n, after, err = resealBatch(ctx, tx, box, c, after, opts, &r)
			return err
		})
		if err != nil {
			return r, err
		}
		if opts.OnBatchFunc != nil && n > 0 {
			opts.OnBatchFunc(r)
		}
		if n < opts.BatchSize {
			return r, ctx.Err()
		}
	}
}

type sealedRow struct {
	id, keyID  string
	ciphertext []byte
}

// resealBatch locks up to opts.BatchSize stale rows after the id after, re-seals them and
// returns how many it read and the last id. Report counts change only when the batch commits.
func resealBatch(ctx context.Context, tx pgx.Tx, box *secret.Box, c Column, after string, opts *Options, total *Report) (int, string, error) {
	rows, err := tx.Query(ctx, c.selectSQL(), box.CurrentKeyID(), after, opts.BatchSize)
	if err != nil {
		return 0, after, fmt.Errorf("error reading secrets: %w", err)
	}
	batch, err := pgx.CollectRows(rows, func(cr pgx.CollectableRow) (sealedRow, error) {
		var out sealedRow
		return out, cr.Scan(&out.id, &out.keyID, &out.ciphertext)
	})
	if err != nil {
		return 0, after, fmt.Errorf("error reading secrets: %w", err)
	}
	r := *total
	r.FailedIDs = append([]string(nil), total.FailedIDs...)
	for _, s := range batch {
		after = s.id
		plain, err := box.Open(s.keyID, s.ciphertext, c.ContextFunc(s.id))
		if errors.Is(err, secret.ErrUnknownKey) || errors.Is(err, secret.ErrCorrupt) {
			r.Failed++
			if len(r.FailedIDs) < 10 {
				r.FailedIDs = append(r.FailedIDs, s.id)
			}
			continue
		}
		if err != nil {
			return 0, after, err
		}
		r.Resealed++
		if opts.DryRun {
			continue
		}
		keyID, sealed := box.Seal(plain, c.ContextFunc(s.id))
		if _, err := tx.Exec(ctx, c.updateSQL(), s.id, keyID, sealed); err != nil {
			return 0, after, fmt.Errorf("error writing re-sealed secret: %w", err)
		}
	}
	*total = r
	return len(batch), after, nil
}

// The statements are built from Columns, a fixed table in this file (never from input), with
// every identifier quoted; sqlc cannot generate one query for many tables.

func (c Column) ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func (c Column) countCurrentSQL() string {
	return fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = $1", c.ident(c.Table), c.ident(c.KeyID))
}

func (c Column) selectSQL() string {
	return fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE %s IS NOT NULL AND %s <> $1 AND %s > $2 ORDER BY %s LIMIT $3 FOR UPDATE",
		c.ident(c.ID), c.ident(c.KeyID), c.ident(c.Ciphertext), c.ident(c.Table),
		c.ident(c.Ciphertext), c.ident(c.KeyID), c.ident(c.ID), c.ident(c.ID))
}

func (c Column) updateSQL() string {
	return fmt.Sprintf("UPDATE %s SET %s = $2, %s = $3 WHERE %s = $1",
		c.ident(c.Table), c.ident(c.KeyID), c.ident(c.Ciphertext), c.ident(c.ID))
}
