package delivery_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
)

func TestSettingsNeverShowPassword(t *testing.T) {
	t.Parallel()
	s := withAuth(settingsFor("smtp.example.test", 587, delivery.SecurityStartTLS), delivery.AuthPlain)

	t.Run("FmtAndJSON", func(t *testing.T) {
		t.Parallel()
		requireNoSecret(t, testPassword, s, &s, struct{ Upstream delivery.Settings }{s})
		require.Contains(t, s.String(), "smtp://mailer@example.test@smtp.example.test:587")
		require.Contains(t, fmt.Sprintf("%+v", s), "password [redacted]")
		b, err := json.Marshal(s)
		require.NoError(t, err)
		require.NotContains(t, string(b), "password")
	})

	t.Run("Slog", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("probe", "settings", s)
		require.NotContains(t, buf.String(), testPassword)
		require.Contains(t, buf.String(), `"password":"[redacted]"`)
	})
}

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	valid := withAuth(settingsFor("smtp.example.test", 465, delivery.SecurityTLS), delivery.AuthLogin)
	require.NoError(t, valid.Validate())

	cases := map[string]struct {
		mod  func(*delivery.Settings)
		want string
	}{
		"EmptyHost":        {func(s *delivery.Settings) { s.Host = "" }, "host must be"},
		"PortOutOfRange":   {func(s *delivery.Settings) { s.Port = 70000 }, "port must be"},
		"UnknownSecurity":  {func(s *delivery.Settings) { s.Security = "ssl" }, "security must be"},
		"UnknownMechanism": {func(s *delivery.Settings) { s.AuthMechanism = "xoauth2" }, "auth mechanism must be"},
		"MissingPassword":  {func(s *delivery.Settings) { s.Password = "" }, "username and password are required"},
		"HELOWithSpace":    {func(s *delivery.Settings) { s.HELOName = "a b" }, "helo name"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := valid
			tc.mod(&s)
			err := s.Validate()
			require.ErrorContains(t, err, tc.want)
			requireNoSecret(t, testPassword, err)
		})
	}
}
