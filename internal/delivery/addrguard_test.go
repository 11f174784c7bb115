package delivery_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

func TestAllowAddrFunc(t *testing.T) {
	t.Parallel()
	srv := smtptest.NewServer(t, smtptest.Opts{})
	denyLoopback := func(a netip.Addr) bool { return !a.IsLoopback() }

	t.Run("ProbeRefusesBeforeConnecting", func(t *testing.T) {
		s := settingsFor("localhost", srv.Port(), delivery.SecurityNone)
		s.AllowAddrFunc = denyLoopback
		res := delivery.Probe(context.Background(), s)
		require.False(t, res.OK)
		require.Equal(t, delivery.CodeAddressNotAllowed, res.Code)
		require.Contains(t, res.Message, "private or local address")
		require.Zero(t, srv.Connections())
	})
	t.Run("PoolRefusesAsConfigProblem", func(t *testing.T) {
		s := settingsFor(srv.Host(), srv.Port(), delivery.SecurityNone)
		s.AllowAddrFunc = denyLoopback
		pool, err := delivery.NewPool(s, nil)
		require.NoError(t, err)
		defer pool.Close()
		_, err = pool.Send(context.Background(), delivery.Envelope{From: "a@example.test", To: []string{"b@example.test"}}, []byte("Subject: x\r\n\r\nx\r\n"))
		require.Error(t, err)
		o := delivery.Classify(err)
		require.Equal(t, delivery.CodeAddressNotAllowed, o.Code)
		require.Equal(t, delivery.ClassConfig, o.Class)
		require.Zero(t, srv.Connections())
	})
	t.Run("AllowedAddressesConnect", func(t *testing.T) {
		s := settingsFor(srv.Host(), srv.Port(), delivery.SecurityNone)
		s.AllowAddrFunc = func(netip.Addr) bool { return true }
		require.True(t, delivery.Probe(context.Background(), s).OK)
	})
}
