package message

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAttemptStagesLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("DebugLevelLogsEachStage", func(t *testing.T) {
		t.Parallel()
		b := setupRecord(t, 1)
		var buf bytes.Buffer
		b.deliverer.logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		id := b.submit(t, 1)[0]
		fetched := time.Now().Add(-5 * time.Millisecond)
		_, err := b.deliverer.Attempt(ctx, b.tenantID, id, AttemptOpts{RetryAt: time.Now().Add(time.Hour), Fetched: fetched})
		require.NoError(t, err)
		var line map[string]any
		for l := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
			if strings.Contains(l, `"delivery attempt stages"`) {
				require.NoError(t, json.Unmarshal([]byte(l), &line))
			}
		}
		require.NotNil(t, line, "one line of stages: %s", buf.String())
		require.Equal(t, id, line["message_id"])
		require.GreaterOrEqual(t, line["fetched_to_attempt_ms"], 5.0)
		for _, k := range []string{"claim_ms", "sign_ms", "send_ms"} {
			require.Contains(t, line, k)
		}
		require.Greater(t, line["send_ms"], 0.0, "the SMTP transaction takes time")
	})

	t.Run("InfoLevelLogsNoStages", func(t *testing.T) {
		t.Parallel()
		b := setupRecord(t, 1)
		var buf bytes.Buffer
		b.deliverer.logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
		id := b.submit(t, 1)[0]
		_, err := b.deliverer.Attempt(ctx, b.tenantID, id, AttemptOpts{RetryAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		require.Contains(t, buf.String(), `"delivery attempt"`)
		require.NotContains(t, buf.String(), "stages")
	})
}
