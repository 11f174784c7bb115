package pgembed

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestRunningURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := clusterDir(t)

	_, ok := RunningURL(dir, "postgres")
	require.False(t, ok, "no cluster yet")

	c, err := Start(ctx, Config{Dir: dir, Ephemeral: true})
	require.NoError(t, err)
	dsn, ok := RunningURL(dir, "postgres")
	require.True(t, ok)
	require.Equal(t, c.URL("postgres"), dsn, "the same socket the owner uses")
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	var one int
	require.NoError(t, conn.QueryRow(ctx, "SELECT 1").Scan(&one))
	require.NoError(t, conn.Close(ctx))

	require.NoError(t, c.Stop(ctx))
	_, ok = RunningURL(dir, "postgres")
	require.False(t, ok, "a stopped cluster is not running")
}
