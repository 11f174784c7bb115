package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/dbtest"
)

// adminResult is one run of `sendwerk admin …` as a separate process.
type adminResult struct {
	code           int
	stdout, stderr string
}

// runAdminCLI runs the real binary (the test binary acting as main) with env on top of a
// clean environment.
func runAdminCLI(t *testing.T, env map[string]string, args ...string) adminResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"admin"}, args...)...)
	cmd.Env = append(filteredEnv(), runMainEnv+"=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return adminResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func TestAdminTenantAndKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, nil)
	env := map[string]string{"DATABASE_URL": b.dbURL}

	t.Run("CreatesTenant", func(t *testing.T) {
		r := runAdminCLI(t, env, "tenant", "create", "--name", "Acme GmbH", "--quota", "5000")
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `^Created tenant ten_\w+ \(Acme GmbH\), monthly quota 5000 messages\.\n`, r.stdout)
		require.Contains(t, r.stderr, "connecting to DATABASE_URL", "progress goes to stderr")
	})

	var tenantID string
	t.Run("CreatesTenantJSON", func(t *testing.T) {
		r := runAdminCLI(t, env, "tenant", "create", "--name", "Beta AG", "--json")
		require.Equal(t, 0, r.code, r.stderr)
		var got struct {
			ID           string `json:"id"`
			Name         string `json:"name"`
			MonthlyQuota *int64 `json:"monthly_quota"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
		require.Equal(t, "Beta AG", got.Name)
		require.Nil(t, got.MonthlyQuota)
		tenantID = got.ID
		viaAPI, err := b.admin.GetTenantWithResponse(ctx, tenantID)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, viaAPI.StatusCode(), "the API sees the tenant the CLI made")
	})

	t.Run("CreatesKeyPrintedOnce", func(t *testing.T) {
		r := runAdminCLI(t, env, "api-key", "create", "--tenant", tenantID, "--name", "backend", "--scopes", "read,manage")
		require.Equal(t, 0, r.code, r.stderr)
		secret := strings.TrimSpace(strings.SplitN(r.stdout, "\n\n", 3)[1])
		require.True(t, strings.HasPrefix(secret, "sw_"), r.stdout)
		require.Equal(t, 1, strings.Count(r.stdout+r.stderr, secret), "the secret is printed exactly once")
		require.Contains(t, r.stdout, "scopes read, manage")

		me, err := b.client(t, secret).GetMeWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, me.StatusCode(), string(me.Body))
		require.Equal(t, tenantID, me.JSON200.Tenant.Id)
	})

	t.Run("CreatesKeyJSON", func(t *testing.T) {
		r := runAdminCLI(t, env, "api-key", "create", "--tenant", tenantID, "--name", "ci", "--scopes", "messages:send",
			"--cidrs", "127.0.0.0/8", "--expires", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--json")
		require.Equal(t, 0, r.code, r.stderr)
		var got sendwerk.ApiKeyCreated
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
		require.Equal(t, []sendwerk.Scope{sendwerk.ScopeMessagesSend}, got.Scopes)
		require.Equal(t, []string{"127.0.0.0/8"}, got.AllowedCidrs)
		require.NotNil(t, got.ExpiresAt)
		require.EqualValues(t, "active", got.Status)
		me, err := b.client(t, got.Secret).GetMeWithResponse(ctx)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, me.StatusCode())
	})

	t.Run("ListsTenants", func(t *testing.T) {
		r := runAdminCLI(t, env, "tenant", "list")
		require.Equal(t, 0, r.code, r.stderr)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		require.Len(t, lines, 3, r.stdout)
		require.Regexp(t, `^ID\s+NAME\s+MONTHLY QUOTA\s+CREATED`, lines[0])
		require.Regexp(t, `^ten_\w+\s+Acme GmbH\s+5000\s+20\d\d-`, lines[1], "oldest first")
		require.Regexp(t, `^`+tenantID+`\s+Beta AG\s+none\s+`, lines[2])

		for _, cmd := range [][]string{{"tenant", "list"}, {"domains", "due"}} {
			r = runAdminCLI(t, env, append(cmd, "--limit", "0")...)
			require.Equal(t, 2, r.code, r.stdout)
			require.Contains(t, r.stderr, "--limit must be between 1 and 10000")
		}

		r = runAdminCLI(t, env, "tenant", "list", "--json", "--limit", "1")
		require.Equal(t, 0, r.code, r.stderr)
		var got struct {
			Items []sendwerk.Tenant `json:"items"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
		require.Len(t, got.Items, 1)
		require.Equal(t, "Acme GmbH", got.Items[0].Name)
	})

	t.Run("RejectsBadInput", func(t *testing.T) {
		r := runAdminCLI(t, env, "api-key", "create", "--tenant", tenantID, "--name", "x", "--scopes", "fly")
		require.Equal(t, 2, r.code)
		require.Contains(t, r.stderr, "scopes[0]: must be one of")
		require.Empty(t, r.stdout)

		r = runAdminCLI(t, env, "api-key", "create", "--tenant", "ten_01jd3v8m5q0c7s2k9x4r6t1w3y", "--name", "x", "--scopes", "read")
		require.Equal(t, 1, r.code)
		require.Contains(t, r.stderr, `no tenant with id "ten_01jd3v8m5q0c7s2k9x4r6t1w3y"`)

		r = runAdminCLI(t, env, "tenant", "create", "--quota", "3")
		require.Equal(t, 2, r.code)
		require.Contains(t, r.stderr, "--name is required")
		require.NotContains(t, r.stderr, "connecting", "usage errors stop before the database")

		r = runAdminCLI(t, env, "tenant", "remove")
		require.Equal(t, 2, r.code)
		require.Contains(t, r.stderr, `unknown admin command "tenant remove"`)
	})
}

func TestAdminDomainsDue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A database without a server: no scheduler claims the due domains under our feet.
	dbURL := dbtest.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": dbURL}
	r := runAdminCLI(t, env, "domains", "due")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "No domain checks are due.\n", r.stdout)

	r = runAdminCLI(t, env, "tenant", "create", "--name", "Domains GmbH", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var ten struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &ten))

	pool, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	defer pool.Close()
	insert := func(id, domain string, next time.Duration) {
		_, err := pool.Exec(ctx, `INSERT INTO sending_domains (id, tenant_id, domain, verification_token, next_check_at)
			VALUES ($1, $2, $3, 'tok', now() + $4 * interval '1 second')`, id, ten.ID, domain, next.Seconds())
		require.NoError(t, err)
	}
	insert("dom_01jd3v8m5q0c7s2k9x4r6t1w3a", "late.example", -10*time.Minute)
	insert("dom_01jd3v8m5q0c7s2k9x4r6t1w3b", "later.example", -30*time.Minute)
	insert("dom_01jd3v8m5q0c7s2k9x4r6t1w3c", "future.example", time.Hour)

	r = runAdminCLI(t, env, "domains", "due")
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 4, r.stdout)
	require.Regexp(t, `^DOMAIN\s+STATUS\s+DUE SINCE`, lines[0])
	require.Regexp(t, `^later\.example\s+pending\s+30m\d+s ago\s+never\s+`+ten.ID, lines[1], "most overdue first")
	require.Regexp(t, `^late\.example\s+pending\s+10m\d+s ago`, lines[2])
	require.Equal(t, "2 due; a running server's scheduler claims them on its next run.", lines[3])

	r = runAdminCLI(t, env, "domains", "due", "--json", "--limit", "1")
	require.Equal(t, 0, r.code, r.stderr)
	var got struct {
		Items []struct {
			ID, TenantID, Domain, Status string
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
	require.Len(t, got.Items, 1)
	require.Equal(t, "later.example", got.Items[0].Domain)
	require.Equal(t, "dom_01jd3v8m5q0c7s2k9x4r6t1w3b", got.Items[0].ID)
}

// TestAdminEmbeddedDatabase uses the development database without DATABASE_URL: it starts
// the embedded cluster itself when no server runs, and shares a running server's otherwise.
func TestAdminEmbeddedDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataDir, err := os.MkdirTemp("", "swadm")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dataDir) })
	require.NoError(t, os.Chmod(dataDir, 0o755))
	env := map[string]string{"SENDWERK_DATA_DIR": dataDir}

	r := runAdminCLI(t, env, "tenant", "create", "--name", "Before Serve", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "starting the embedded PostgreSQL")
	require.Contains(t, r.stderr, "checking database migrations")

	srv := startServerProcess(t, dataDir)
	r = runAdminCLI(t, env, "tenant", "create", "--name", "While Serving", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "using the embedded database of the running server")

	admin, err := sendwerk.NewClientWithResponses(srv.baseURL, sendwerk.WithRequestEditorFn(bearer(srv.adminToken)))
	require.NoError(t, err)
	list, err := admin.ListTenantsWithResponse(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, list.StatusCode())
	var names []string
	for _, tn := range list.JSON200.Items {
		names = append(names, tn.Name)
	}
	require.Equal(t, []string{"Before Serve", "While Serving"}, names)
	srv.stop(t)
}
