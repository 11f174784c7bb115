package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	sendwerk "github.com/sendwerk/sendwerk/clients/go"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// readmeBlock returns the text between <!-- NAME:start --> and <!-- NAME:end --> in README.md.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	return docBlock(t, "README.md", name)
}

// docBlock returns the text between <!-- NAME:start --> and <!-- NAME:end --> in file, a
// path from the repository root.
func docBlock(t *testing.T, file, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../..", file))
	require.NoError(t, err)
	s := string(b)
	start := strings.Index(s, "<!-- "+name+":start -->")
	end := strings.Index(s, "<!-- "+name+":end -->")
	require.True(t, start >= 0 && end > start, "%s lacks the %s block", file, name)
	return strings.TrimSpace(s[start+len("<!-- "+name+":start -->") : end])
}

func TestConfigTableDoc(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	printConfigTable(&buf)
	require.Equal(t, strings.TrimSpace(buf.String()), docBlock(t, "docs/configuration.md", "config"),
		"docs/configuration.md's table must be the output of 'sendwerk config'")
}

// TestReadmeQuickstart runs the README's curl quickstart, as written, against a live server
// with the development inbox and DNS on (on free ports): from a new tenant to a verified
// shop.test and a DKIM-signed message in the inbox.
func TestReadmeQuickstart(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "jq"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s is needed (make setup installs it)", tool)
	}
	b := setup(t, devEnv)
	script := readmeBlock(t, "quickstart")
	script = strings.TrimSuffix(strings.TrimPrefix(script, "```sh"), "```")
	require.Contains(t, script, "BASE=http://localhost:8080")
	script = strings.Replace(script, "BASE=http://localhost:8080", "BASE="+b.baseURL, 1)

	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ".data"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".data", "admin-token"), []byte(testAdminToken+"\n"), 0o600))
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	text := string(out)
	require.Contains(t, text, "tenant: ten_")
	require.Contains(t, text, "api key: sw_")
	require.Contains(t, text, `"tenant": "Acme GmbH"`)
	require.Contains(t, text, `"status": 422`)
	require.Contains(t, text, `"field": "scopes[0]"`)
	require.Contains(t, text, `"field": "name"`)
	require.Contains(t, text, `"status": "verified"`)
	require.Contains(t, text, `"ownership: pass"`)
	require.Contains(t, text, `"dkim: pass"`)
	require.Contains(t, text, `"kind": "platform"`)
	require.Regexp(t, `message msg_\w+: delivered`, text)
	require.Contains(t, text, `"from": "\"Shop\" <noreply@shop.test>"`)
	require.Contains(t, text, `"to": "\"Jane Doe\" <jane@example.org>"`, "the name-addr strings and the single to were understood")
	require.Contains(t, text, `"subject": "Welcome to the shop"`)
	require.Contains(t, text, `"result": "pass"`)
	require.Contains(t, text, `"domain": "shop.test"`)
}

// devEnv turns on the development inbox and DNS on free ports.
var devEnv = map[string]string{"SENDWERK_DEV_INBOX_ADDR": "127.0.0.1:0", "SENDWERK_DEV_DNS_ADDR": "127.0.0.1:0"}

// setupTrustedUpstream starts the SMTP server the README's connector examples log in to
// (noreply@example.com / app-password, STARTTLS) and a live server that trusts its CA.
func setupTrustedUpstream(t *testing.T) (*testBundle, *smtptest.Server) {
	t.Helper()
	ca := smtptest.NewCA(t)
	up := smtptest.NewServer(t, smtptest.Opts{StartTLS: true, CA: ca, Auth: true,
		Users: map[string]string{"noreply@example.com": "app-password"}})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.PEM(), 0o644))
	return setup(t, map[string]string{"SENDWERK_UPSTREAM_CA_FILE": caFile}), up
}

// TestReadmeConnectors runs the README's connector examples against a live server and an
// SMTP server on loopback whose certificate the server trusts, with only the host and port
// swapped for the test's.
func TestReadmeConnectors(t *testing.T) {
	t.Parallel()
	b, up := setupTrustedUpstream(t)
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage)

	script := readmeBlock(t, "connectors")
	script = strings.TrimSuffix(strings.TrimPrefix(script, "```sh"), "```")
	require.Equal(t, 2, strings.Count(script, `"host": "smtp.example.com", "port": 587`))
	script = strings.ReplaceAll(script, `"host": "smtp.example.com", "port": 587`, fmt.Sprintf(`"host": "127.0.0.1", "port": %d`, up.Port()))
	script = "BASE=" + b.baseURL + "\nAPI_KEY=" + key + "\n" + script

	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	text := string(out)
	require.Equal(t, 3, strings.Count(text, `"ok": true`), text)
	require.Contains(t, text, `"banner: ok"`)
	require.Contains(t, text, `"auth: ok"`)
	require.Contains(t, text, "connector: con_")
	require.Contains(t, text, `"status": "paused"`)
	require.Contains(t, text, `"password_set": true`)
	require.Len(t, up.Messages(), 1, "the test e-mail arrived")
	require.Equal(t, []string{"you@example.com"}, up.Messages()[0].To)
}

// TestReadmeMessages runs the README's connector block and then its messages block, as
// written but for the upstream's host and port, against a live server.
func TestReadmeMessages(t *testing.T) {
	t.Parallel()
	b, up := setupTrustedUpstream(t)
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)

	script := strings.TrimSuffix(strings.TrimPrefix(readmeBlock(t, "connectors"), "```sh"), "```") +
		strings.TrimSuffix(strings.TrimPrefix(readmeBlock(t, "messages"), "```sh"), "```")
	script = strings.ReplaceAll(script, `"host": "smtp.example.com", "port": 587`, fmt.Sprintf(`"host": "127.0.0.1", "port": %d`, up.Port()))
	script = "BASE=" + b.baseURL + "\nAPI_KEY=" + key + "\n" + script
	// The block's last example counts this minute's messages against a limit of one: run it
	// clear of a minute boundary, which a CI run once fell on (the limited submission got 202).
	clearOfMinuteBoundary(t)
	out, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	require.NoError(t, err, string(out))
	text := string(out)
	require.Contains(t, text, "message: msg_")
	require.Contains(t, text, `"status": "delivered"`)
	require.Contains(t, text, `"delivered 250"`)
	require.Contains(t, text, `"accepted": 1`)
	require.Contains(t, text, `"field": "to[0].email"`)
	require.Contains(t, text, `"status": "cancelled"`)
	require.Contains(t, text, "HTTP 429, Retry-After: ")
	require.Contains(t, text, `"limit": 1`)
}

// TestReadmeSuppressions runs the README's connector block and then its suppressions block,
// as written but for the upstream's host and port, against a live server.
func TestReadmeSuppressions(t *testing.T) {
	t.Parallel()
	b, up := setupTrustedUpstream(t)
	_, _, key := b.newTenantKey(t, "Acme", sendwerk.ScopeManage, sendwerk.ScopeMessagesSend)

	script := strings.TrimSuffix(strings.TrimPrefix(readmeBlock(t, "connectors"), "```sh"), "```") +
		strings.TrimSuffix(strings.TrimPrefix(readmeBlock(t, "suppressions"), "```sh"), "```")
	script = strings.ReplaceAll(script, `"host": "smtp.example.com", "port": 587`, fmt.Sprintf(`"host": "127.0.0.1", "port": %d`, up.Port()))
	script = "BASE=" + b.baseURL + "\nAPI_KEY=" + key + "\n" + script
	out, err := exec.Command("bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	require.NoError(t, err, string(out))
	text := string(out)
	require.Contains(t, text, `"reason": "unsubscribe"`)
	require.Contains(t, text, `"status": 422`)
	require.Contains(t, text, "jane@example.org is on the suppression list (unsubscribe)")
	require.Contains(t, text, `"status": "queued"`)
	require.Contains(t, text, `"address": "jane@example.org"`)
	require.Contains(t, text, "HTTP 204")
}
