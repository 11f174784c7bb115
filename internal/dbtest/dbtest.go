// Package dbtest gives tests a real, migrated PostgreSQL: one throwaway cluster per test
// binary (or TEST_DATABASE_URL), a template database migrated once, and per test either a
// rolled-back transaction (TestTx) or a database cloned from the template (NewDatabase).
package dbtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sendwerk/sendwerk/internal/pgembed"
	"github.com/sendwerk/sendwerk/internal/store"
)

const templateDB = "sendwerk_template"

var (
	setupOnce sync.Once
	setupErr  error
	cluster   *pgembed.Cluster
	tmpDir    string
	serverURL *url.URL // any database on the server; the path is replaced per use
	txPool    *pgxpool.Pool
	dbCounter atomic.Int64
)

// Main runs a test binary's tests and then stops the cluster they used. Call it from
// TestMain: `func TestMain(m *testing.M) { dbtest.Main(m) }`.
func Main(m *testing.M) {
	code := m.Run()
	if txPool != nil {
		txPool.Close()
	}
	if cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = cluster.Stop(ctx)
		cancel()
	}
	if tmpDir != "" {
		_ = os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

func setup() error {
	setupOnce.Do(func() { setupErr = doSetup() })
	return setupErr
}

func doSetup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := startServer(ctx); err != nil {
		return err
	}
	if err := createTemplate(ctx); err != nil {
		return err
	}
	// Transactional tests share one database cloned from the template.
	txDB := fmt.Sprintf("sendwerk_tx_%d", os.Getpid())
	if err := createDatabase(ctx, txDB); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, urlFor(txDB))
	if err != nil {
		return fmt.Errorf("error opening test pool: %w", err)
	}
	txPool = pool
	return nil
}

func startServer(ctx context.Context) error {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		parsed, err := url.Parse(u)
		if err != nil {
			return fmt.Errorf("error parsing TEST_DATABASE_URL: %w", err)
		}
		serverURL = parsed
		return nil
	}
	dir, err := os.MkdirTemp("", "swpg")
	if err != nil {
		return fmt.Errorf("error making cluster dir: %w", err)
	}
	tmpDir = dir
	c, err := pgembed.Start(ctx, pgembed.Config{Dir: dir, Ephemeral: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return fmt.Errorf("error starting test cluster: %w", err)
	}
	cluster = c
	serverURL, err = url.Parse(c.URL("postgres"))
	return err
}

func createTemplate(ctx context.Context) error {
	if err := execSQL(ctx, "DROP DATABASE IF EXISTS "+templateDB+" WITH (FORCE)"); err != nil {
		return err
	}
	if err := execSQL(ctx, "CREATE DATABASE "+templateDB); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, urlFor(templateDB))
	if err != nil {
		return fmt.Errorf("error opening template pool: %w", err)
	}
	defer pool.Close()
	if err := store.Migrate(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return fmt.Errorf("error migrating template: %w", err)
	}
	return nil
}

func createDatabase(ctx context.Context, name string) error {
	if err := execSQL(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return err
	}
	return execSQL(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateDB))
}

func execSQL(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, serverURL.String())
	if err != nil {
		return fmt.Errorf("error connecting to test server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("error running %q: %w", sql, err)
	}
	return nil
}

func urlFor(db string) string {
	u := *serverURL
	u.Path = "/" + db
	return u.String()
}

// TestTx returns a transaction on a migrated database, rolled back when the test ends, so
// tests see only their own rows and leave nothing behind.
func TestTx(ctx context.Context, t testing.TB) pgx.Tx {
	t.Helper()
	if err := setup(); err != nil {
		t.Fatalf("test database: %v", err)
	}
	tx, err := txPool.Begin(ctx)
	if err != nil {
		t.Fatalf("error beginning test transaction: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// NewDatabase returns the URL of a fresh migrated database of the test's own, dropped when
// the test ends. Use it when the code under test commits (servers, River workers).
func NewDatabase(t testing.TB) string {
	t.Helper()
	if err := setup(); err != nil {
		t.Fatalf("test database: %v", err)
	}
	name := fmt.Sprintf("sendwerk_t%d_%d", os.Getpid(), dbCounter.Add(1))
	ctx := context.Background()
	if err := createDatabase(ctx, name); err != nil {
		t.Fatalf("error creating test database: %v", err)
	}
	t.Cleanup(func() {
		if err := execSQL(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil && !strings.Contains(err.Error(), "does not exist") {
			t.Logf("error dropping test database: %v", err)
		}
	})
	return urlFor(name)
}

// NewPool opens a pool on a fresh database (see NewDatabase), closed when the test ends.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), NewDatabase(t))
	if err != nil {
		t.Fatalf("error opening pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}
