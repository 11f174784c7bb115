package delivery

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseReply(t *testing.T) {
	t.Parallel()
	require.Equal(t, Reply{Code: 250, EnhancedCode: "2.0.0", Text: "Ok: queued as 4XyZ12"}, parseReply(250, "2.0.0 Ok: queued as 4XyZ12"))
	require.Equal(t, Reply{Code: 550, EnhancedCode: "5.1.1", Text: "no such user here"}, parseReply(550, "5.1.1 no such user\n5.1.1 here"))
	require.Equal(t, Reply{Code: 250, Text: "2.0 not an enhanced code"}, parseReply(250, "2.0 not an enhanced code"))
	require.Equal(t, Reply{Code: 250, EnhancedCode: "2.6.0", Text: "<id@host> [InternalId=1] Queued mail for delivery"}, parseReply(250, "2.6.0 <id@host> [InternalId=1] Queued mail for delivery"))
	require.Equal(t, "4XyZ12", queueID("Ok: queued as 4XyZ12"))
	require.Equal(t, "ABC123", queueID("OK: Queued as ABC123."))
	require.Empty(t, queueID("OK id=1r2s3t"))
}
