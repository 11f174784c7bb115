package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dnstest"
	"github.com/sendwerk/sendwerk/internal/smtptest"
)

// TestCurlExamples runs examples/curl/*.sh, as written, against a live server with real
// SMTP and DNS peers on loopback, the way a reader of the README would.
func TestCurlExamples(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "jq"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "%s is needed (make setup installs it)", tool)
	}
	// The upstream refuses one mailbox, so batch.sh has a failure to explain.
	up := smtptest.NewServer(t, smtptest.Opts{Script: &smtptest.Script{RcptFunc: func(to string) *smtp.SMTPError {
		if to == "gone@customer.example" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
		}
		return nil
	}}})
	zone := dnstest.NewServer(t, "$ORIGIN example.\n@ 3600 IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60\n")
	b := setup(t, map[string]string{
		"SENDWERK_DNS_SERVERS":                  zone.Addr(),
		"SENDWERK_DOMAIN_MANUAL_CHECK_INTERVAL": "1s",
	})
	// The scripts read the admin token from .data/admin-token in their working directory,
	// as they do next to `make run`.
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ".data"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".data", "admin-token"), []byte(testAdminToken+"\n"), 0o600))
	scripts, err := filepath.Abs("../../examples/curl")
	require.NoError(t, err)

	run := func(t *testing.T, script string, env map[string]string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command("bash", append([]string{filepath.Join(scripts, script)}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(filteredEnv(), "SENDWERK_URL="+b.baseURL)
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		t.Logf("%s %s:\n%s", script, strings.Join(args, " "), out)
		return string(out), err
	}

	var apiKey string
	t.Run("Quickstart", func(t *testing.T) {
		out, err := run(t, "quickstart.sh", nil)
		require.NoError(t, err)
		require.Contains(t, out, "== As the operator: create a tenant", "it says what it does")
		require.Contains(t, out, `"type": "urn:sendwerk:problem:validation"`)
		require.Regexp(t, `\{"id":"key_\w+","name":"backend"\}\n\{"id":"key_\w+","name":"dashboard"\}`, out, "the key list, one page at a time")
		m := regexp.MustCompile(`export SENDWERK_API_KEY=(sw_\S+)`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		apiKey = m[1]
	})

	t.Run("Connectors", func(t *testing.T) {
		out, err := run(t, "connectors.sh", map[string]string{
			"SENDWERK_API_KEY": apiKey, "SMTP_HOST": up.Host(), "SMTP_PORT": fmt.Sprint(up.Port()), "SMTP_SECURITY": "none",
			"FROM_EMAIL": "noreply@acme.example", "TEST_TO": "it@acme.example",
		})
		require.NoError(t, err)
		require.Contains(t, out, "ehlo: ok")
		require.Regexp(t, `CONNECTOR_ID=con_\w+`, out)
		var got bool
		for _, m := range up.Messages() {
			got = got || (m.From == "noreply@acme.example" && strings.Join(m.To, ",") == "it@acme.example")
		}
		require.True(t, got, "the test e-mail reached the SMTP server")

		out, err = run(t, "connectors.sh", map[string]string{
			"SENDWERK_API_KEY": apiKey, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": fmt.Sprint(closedPort(t)), "SMTP_SECURITY": "none",
			"FROM_EMAIL": "noreply@acme.example", "TEST_TO": "it@acme.example",
		})
		require.Error(t, err, "a failed connection test fails the script")
		require.Contains(t, out, `"code": "tcp.refused"`)
	})

	t.Run("SendAndPoll", func(t *testing.T) {
		out, err := run(t, "send.sh", map[string]string{"SENDWERK_API_KEY": apiKey, "TO": "jane@customer.example", "WAIT": "30"})
		require.NoError(t, err)
		require.Contains(t, out, "status: delivered")
		same := regexp.MustCompile(`"id": "(msg_\w+)"[\s\S]*same id: (msg_\w+)`).FindStringSubmatch(out)
		require.NotNil(t, same, "the idempotent retry is shown")
		require.Equal(t, same[1], same[2])
		require.Regexp(t, `delivered\s+\S+`, out, "the timeline shows the server's reply")
	})

	t.Run("Batch", func(t *testing.T) {
		out, err := run(t, "batch.sh", map[string]string{"SENDWERK_API_KEY": apiKey, "TO": "a@customer.example,b@customer.example,c@customer.example", "WAIT": "30"})
		require.NoError(t, err)
		require.Contains(t, out, `"accepted": 3`)
		require.Contains(t, out, "#3: refused, urn:sendwerk:problem:validation")
		require.Contains(t, out, "3 of 3 final, 3 delivered")
		require.NotContains(t, out, "Why the others")
	})

	t.Run("BatchStopsAtFailures", func(t *testing.T) {
		out, err := run(t, "batch.sh", map[string]string{"SENDWERK_API_KEY": apiKey, "TO": "a@customer.example,gone@customer.example", "WAIT": "30"})
		require.Error(t, err, "a failed message fails the script")
		require.Contains(t, out, "2 of 2 final, 1 delivered", "it stops once every message is final, not at WAIT")
		require.Contains(t, out, "== Why the others did not arrive")
		require.Regexp(t, `msg_\w+ to gone@customer\.example: failed: .*\(upstream said 550 .*No such user here\)`, out)
	})

	t.Run("DomainVerification", func(t *testing.T) {
		// No API key: the script makes its own demo tenant with the admin token.
		out, err := run(t, "domains.sh", nil, "add", "acme.example")
		require.NoError(t, err)
		require.Contains(t, out, "ownership (required): TXT acme.example")
		require.Contains(t, out, "sw1._domainkey.acme.example")
		m := regexp.MustCompile(`domains\.sh check (dom_\w+)`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		key := regexp.MustCompile(`key (sw_\w{8})…`).FindStringSubmatch(out)
		require.NotNil(t, key, "the demo tenant is announced")

		// The customer publishes the zone-file snippet the script printed.
		snippet := out[strings.Index(out, "ready to paste"):]
		published := 0
		sc := bufio.NewScanner(strings.NewReader(snippet))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.Contains(line, " IN TXT ") && !strings.HasPrefix(line, ";") {
				zone.Add(line)
				published++
			}
		}
		require.GreaterOrEqual(t, published, 2, "ownership and DKIM records at least:\n%s", snippet)

		out, err = run(t, "domains.sh", map[string]string{"WAIT": "20", "SENDWERK_API_KEY": demoKey(t, b, m[1])}, "check", m[1])
		require.NoError(t, err)
		require.Contains(t, out, "ownership: pass (ownership.ok)")
		require.Contains(t, out, "is verified: messages may be sent from it.")
	})
}

// demoKey makes another key for the tenant owning domainID, since the demo key the script
// made is printed only in part.
func demoKey(t *testing.T, b *testBundle, domainID string) string {
	t.Helper()
	var tenantID string
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT tenant_id FROM sending_domains WHERE id = $1", domainID).Scan(&tenantID))
	r := b.do(t, http.MethodPost, "/v1/tenants/"+tenantID+"/api-keys", testAdminToken, "application/json", `{"name":"check","scopes":["manage"]}`)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var k struct{ Secret string }
	require.NoError(t, json.Unmarshal(r.body, &k))
	return k.Secret
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	srv := smtptest.NewServer(t, smtptest.Opts{})
	port := srv.Port()
	srv.Close()
	return port
}

// TestCurlExamplesDocumentVariables: every variable a script reads with a default or a
// requirement (${NAME:-…}, ${NAME:?…}) is listed in its header comment and in its row of
// the README's table of examples.
func TestCurlExamplesDocumentVariables(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	scripts, err := filepath.Glob("../../examples/curl/*.sh")
	require.NoError(t, err)
	require.NotEmpty(t, scripts)
	uses := regexp.MustCompile(`\$\{([A-Z_]+):[-?]`)
	for _, path := range scripts {
		name := filepath.Base(path)
		if name == "lib.sh" {
			continue // sourced; each script lists what it uses of it
		}
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		var header strings.Builder
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if !strings.HasPrefix(line, "#") {
				break
			}
			header.WriteString(line + "\n")
		}
		row := regexp.MustCompile("(?m)^  \\| `" + regexp.QuoteMeta(name) + ".*$").FindString(string(readme))
		require.NotEmpty(t, row, "README's table of curl examples lacks %s", name)
		for _, m := range uses.FindAllStringSubmatch(string(b), -1) {
			if m[1] == "SENDWERK_URL" || m[1] == "SENDWERK_API_KEY" {
				continue // common to all, said once above the table
			}
			require.Contains(t, header.String(), m[1], "%s reads %s but its header comment does not list it", name, m[1])
			require.Contains(t, row, "`"+m[1]+"`", "%s reads %s but its README row does not list it", name, m[1])
		}
	}
}
