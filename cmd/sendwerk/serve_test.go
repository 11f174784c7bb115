package main

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// The server's collection target is 200 unless the operator's GOGC says otherwise.
func TestSetGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	t.Setenv("GOGC", "")
	require.NoError(t, os.Unsetenv("GOGC"))
	setGCPercent()
	require.Equal(t, defaultGCPercent, debug.SetGCPercent(100), "GOGC unset")

	t.Setenv("GOGC", "100")
	setGCPercent()
	require.Equal(t, 100, debug.SetGCPercent(100), "GOGC=100 is the operator's choice")
}
