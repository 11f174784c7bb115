package main

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/connector"
	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

// TestSecretsRotate runs `sendwerk secrets rotate` after a key change, on a real database.
func TestSecretsRotate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const oldKey, newKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
	dbURL := dbtest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	oldBox, err := secret.NewBox(oldKey)
	require.NoError(t, err)
	ten, err := tenant.NewService(pool).Create(ctx, "Acme", nil)
	require.NoError(t, err)
	pw := "app-password"
	user := "noreply@example.com"
	conn, err := connector.NewService(pool, oldBox, connector.Policy{}).Create(ctx, ten.ID, connector.Input{Name: "office", Kind: connector.KindSMTP,
		SMTP:   &connector.SMTPInput{Host: "smtp.example.com", Port: 587, Security: string(delivery.SecurityStartTLS), Username: &user, Password: &pw},
		Sender: connector.Sender{Email: user}})
	require.NoError(t, err)
	env := map[string]string{"DATABASE_URL": dbURL, "SENDWERK_SECRET_KEY": newKey, "SENDWERK_SECRET_KEY_PREVIOUS": oldKey}
	dir := t.TempDir()

	t.Run("DryRun", func(t *testing.T) {
		r := runCLI(t, dir, env, "secrets", "rotate", "--dry-run")
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "connector SMTP passwords: 1 to re-seal, 0 already under the current key, 0 no configured key opens\n")
		require.Contains(t, r.stdout, "dry run: nothing was written")
		var keyID string
		require.NoError(t, pool.QueryRow(ctx, "SELECT smtp_password_key_id FROM connectors WHERE id = $1", conn.ID).Scan(&keyID))
		require.Equal(t, oldBox.CurrentKeyID(), keyID)
	})
	t.Run("WithoutThePreviousKeyItSaysWhichSecretsAreStuck", func(t *testing.T) {
		r := runCLI(t, dir, map[string]string{"DATABASE_URL": dbURL, "SENDWERK_SECRET_KEY": newKey}, "secrets", "rotate")
		require.Equal(t, 1, r.code, r.stdout)
		require.Contains(t, r.stdout, "connector SMTP passwords: 0 re-sealed, 0 already under the current key, 1 no configured key opens\n")
		require.Contains(t, r.stdout, "cannot open (first 1): "+conn.ID)
		require.Contains(t, r.stderr, "SENDWERK_SECRET_KEY_PREVIOUS")
	})
	t.Run("Rotates", func(t *testing.T) {
		r := runCLI(t, dir, env, "secrets", "rotate")
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "connector SMTP passwords: 1 re-sealed, 0 already under the current key")
		require.Contains(t, r.stderr, "connector SMTP passwords: 1 re-sealed so far", "progress on stderr")
		require.NotContains(t, r.stdout+r.stderr, pw)

		again := runCLI(t, dir, env, "secrets", "rotate")
		require.Equal(t, 0, again.code, again.stderr)
		require.Contains(t, again.stdout, "connector SMTP passwords: 0 re-sealed, 1 already under the current key", "idempotent")

		newBox, err := secret.NewBox(newKey)
		require.NoError(t, err)
		c, err := connector.NewService(pool, newBox, connector.Policy{}).Get(ctx, ten.ID, conn.ID)
		require.NoError(t, err)
		settings, err := connector.NewService(pool, newBox, connector.Policy{}).Settings(c)
		require.NoError(t, err)
		require.Equal(t, pw, settings.Password, "the new key alone opens it")
	})
	t.Run("Usage", func(t *testing.T) {
		r := runCLI(t, dir, nil, "secrets", "rotate", "--help")
		require.Equal(t, 0, r.code)
		require.Contains(t, r.stdout, "sendwerk secrets rotate [--dry-run]")
		require.Equal(t, 2, runCLI(t, dir, nil, "secrets", "rotate", "--bogus").code)
		require.Equal(t, 2, runCLI(t, dir, nil, "secrets").code)
	})
}
