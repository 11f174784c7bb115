package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/config"
)

// TestSystemdUnit checks deploy/sendwerk.service: the hardening it promises is there, and
// systemd's own tools accept it without a warning and rate its exposure low.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile("../../deploy/sendwerk.service")
	require.NoError(t, err)
	for _, line := range []string{
		"DynamicUser=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
		"Environment=SENDWERK_ENV=production", "ExecStart=/usr/local/bin/sendwerk serve",
		"Environment=SENDWERK_SECRET_KEY_FILE=%d/secret-key", "Environment=SENDWERK_ADMIN_TOKEN_FILE=%d/admin-token",
	} {
		require.Contains(t, string(unit), "\n"+line+"\n")
	}
	require.NotRegexp(t, `(?m)^Environment=(SENDWERK_SECRET_KEY|SENDWERK_ADMIN_TOKEN|DATABASE_URL)=`, string(unit),
		"secrets come as credentials, never in the environment")
	for _, m := range regexp.MustCompile(`(?m)^Environment=([A-Z_]+)=`).FindAllStringSubmatch(string(unit), -1) {
		require.True(t, knownVariable(m[1]), "the unit sets %s, which is no configuration variable", m[1])
	}

	// systemd-analyze (Debian's systemd package; scripts/setup.sh installs it) verifies the
	// unit as systemd would load it. The binary it names must exist, so a copy points
	// ExecStart at a stand-in; every other line is verbatim.
	_, err = exec.LookPath("systemd-analyze")
	require.NoError(t, err, "systemd-analyze is needed (make setup installs the systemd package)")
	dir := t.TempDir()
	bin := filepath.Join(dir, "sendwerk")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755))
	copyPath := filepath.Join(dir, "sendwerk.service")
	require.NoError(t, os.WriteFile(copyPath, bytes.ReplaceAll(unit, []byte("/usr/local/bin/sendwerk"), []byte(bin)), 0o644))

	out, err := exec.Command("systemd-analyze", "verify", copyPath).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify warns")

	// Exposure 0 (locked down) to 10 (unprotected); systemd rates ≤ 2 as OK.
	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", copyPath).CombinedOutput()
	require.NoError(t, err, string(out))
	m := regexp.MustCompile(`Overall exposure level for sendwerk\.service: (\d+\.\d)`).FindStringSubmatch(string(out))
	require.NotNil(t, m, string(out))
	exposure, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	require.LessOrEqual(t, exposure, 2.0, "exposure level")
}

func knownVariable(name string) bool {
	for _, v := range config.Vars() {
		if name == v.Name || v.Secret && name == v.Name+"_FILE" {
			return true
		}
	}
	return false
}

// TestDeployDoc checks docs/deploy.md against the configuration: every variable it names
// exists, the required ones are exactly what production refuses to start without, and its
// example environment file, with what the systemd unit adds, is a valid production config.
func TestDeployDoc(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/deploy.md")
	require.NoError(t, err)
	doc := string(b)
	for _, name := range regexp.MustCompile(`\b(?:SENDWERK_[A-Z0-9_]+|DATABASE_URL(?:_FILE)?)\b`).FindAllString(doc, -1) {
		require.True(t, knownVariable(strings.TrimSuffix(name, "_")), "docs/deploy.md names %s, which is no configuration variable", name)
	}

	t.Run("RequiredVariables", func(t *testing.T) {
		var listed []string
		for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\|").FindAllStringSubmatch(docBlock(t, "docs/deploy.md", "deploy-required"), -1) {
			listed = append(listed, m[1])
		}
		// Production with nothing set: the error names every required variable but the key
		// file, which comes with the certificate.
		_, err := config.Load(func(k string) string { return map[string]string{"SENDWERK_ENV": "production"}[k] }, os.ReadFile)
		require.Error(t, err)
		var named []string
		for _, v := range config.Vars() {
			if strings.Contains(err.Error(), v.Name+":") || strings.Contains(err.Error(), v.Name+" and ") {
				named = append(named, v.Name)
			}
		}
		require.ElementsMatch(t, listed, append(named, "SENDWERK_TLS_KEY_FILE"))
	})
	t.Run("ExampleEnvironmentIsValid", func(t *testing.T) {
		block := strings.TrimSuffix(strings.TrimPrefix(docBlock(t, "docs/deploy.md", "deploy-env"), "```sh"), "```")
		env := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, line)
			require.True(t, knownVariable(k), "%s is no configuration variable", k)
			env[k] = v
		}
		// What deploy/sendwerk.service adds.
		unit, err := os.ReadFile("../../deploy/sendwerk.service")
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`(?m)^Environment=([A-Z_]+)=(.*)$`).FindAllStringSubmatch(string(unit), -1) {
			env[m[1]] = m[2]
		}
		files := map[string]string{"%d/admin-token": "0123456789abcdef0123", "%d/secret-key": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
			"/etc/sendwerk/platform-smtp-url": "smtp+starttls://relay:secret@smtp.example.com:587"}
		cfg, err := config.Load(func(k string) string { return env[k] }, func(p string) ([]byte, error) {
			v, ok := files[p]
			if !ok {
				return nil, os.ErrNotExist
			}
			return []byte(v), nil
		})
		require.NoError(t, err)
		require.Equal(t, config.EnvProduction, cfg.Env)
		require.False(t, cfg.MetricsOnAPI(), "metrics on their own listener")
		require.False(t, cfg.AllowPlaintextUpstreams)
	})
}

// TestProductionUpstreamPolicy: with SENDWERK_ENV=production and nothing opted in, a
// connector without TLS or without a login is refused with the field and the rule, as the
// README and docs/configuration.md say; opting in accepts it.
func TestProductionUpstreamPolicy(t *testing.T) {
	t.Parallel()
	const open = `{"name": "open relay", "kind": "smtp", "smtp": {"host": "smtp.example.com", "port": 25, "security": "none", "auth_mechanism": "none"},
		"default_sender": {"email": "noreply@example.com"}}`
	strict := setup(t, map[string]string{"SENDWERK_ENV": "production"})
	_, _, key := strict.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	r := strict.do(t, "POST", "/v1/connectors", key, "application/json", open)
	require.Equal(t, 422, r.status, string(r.body))
	fields := fieldsOf(r.problem)
	require.Equal(t, "none is not allowed by this platform; choose tls or starttls", fields["smtp.security"])
	require.Equal(t, "none is not allowed by this platform; the server must require a login", fields["smtp.auth_mechanism"])

	optedIn := setup(t, map[string]string{"SENDWERK_ENV": "production",
		"SENDWERK_ALLOW_PLAINTEXT_UPSTREAMS": "true", "SENDWERK_ALLOW_UNAUTHENTICATED_UPSTREAMS": "true"})
	_, _, key = optedIn.newTenantKey(t, "Acme", sendwerk.ScopeManage)
	r = optedIn.do(t, "POST", "/v1/connectors", key, "application/json", open)
	require.Equal(t, 201, r.status, string(r.body))
}
