package delivery_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/delivery"
	"github.com/sendwerk/sendwerk/internal/dnstest"
)

// dkimpyVerify runs dkimpy (Debian's python3-dkim, with python3-nacl for ed25519) over
// raw and returns, per DKIM-Signature in order, whether it verified. Keys come from
// records (name -> TXT value) through dkimpy's dnsfunc, so no DNS is involved.
const dkimpyVerify = `
import dkim, json, sys
records = json.loads(sys.argv[1])
def dnsfunc(name, timeout=5):
    value = records.get(name.decode().rstrip("."))
    return value.encode() if value else None
msg = sys.stdin.buffer.read()
d = dkim.DKIM(msg)
n = sum(1 for h in d.headers if h[0].lower() == b"dkim-signature")
print(json.dumps([bool(d.verify(idx=i, dnsfunc=dnsfunc)) for i in range(n)]))
`

func verifyWithDkimpy(t *testing.T, raw []byte, records map[string]string) []bool {
	t.Helper()
	recs, err := json.Marshal(records)
	require.NoError(t, err)
	cmd := exec.Command("/usr/bin/python3", "-c", dkimpyVerify, string(recs))
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "dkimpy (install python3-dkim python3-nacl): %s", out)
	var ok []bool
	require.NoError(t, json.Unmarshal(out, &ok), string(out))
	return ok
}

// unsubscribeMessage is a bulk-style transactional message with one-click unsubscribe
// (RFC 8058), a tenant's custom header and a trace field a relay added.
func unsubscribeMessage() []byte {
	return []byte("Received: from app by relay; Mon, 1 Jan 2026 00:00:00 +0000\r\n" +
		"From: Shop <news@example.test>\r\n" +
		"To: rcpt@example.test\r\n" +
		"Subject: Weekly offers\r\n" +
		"Date: Mon, 1 Jan 2026 00:00:00 +0000\r\n" +
		"Message-ID: <unsub@example.test>\r\n" +
		"List-Unsubscribe: <https://example.test/u/1>, <mailto:u@example.test?subject=1>\r\n" +
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" +
		"X-Campaign: spring\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Offers inside.\r\n")
}

var hTag = regexp.MustCompile(`(?s)\bh=([^;]+);`)

// signedFields returns the h= list of the i-th DKIM-Signature, lower case.
func signedFields(t *testing.T, raw []byte, i int) []string {
	t.Helper()
	sigs := regexp.MustCompile(`(?s)DKIM-Signature:.*?b=[^;]*?\r\n[^ \t]`).FindAll(raw, -1)
	require.Greater(t, len(sigs), i)
	m := hTag.FindSubmatch(sigs[i])
	require.NotNil(t, m)
	var out []string
	for _, f := range strings.Split(string(m[1]), ":") {
		out = append(out, strings.ToLower(strings.Join(strings.Fields(f), "")))
	}
	return out
}

func countOf(list []string, v string) int {
	n := 0
	for _, x := range list {
		if x == v {
			n++
		}
	}
	return n
}

// signBoth signs raw with an RSA-2048 and an Ed25519 key and returns the records.
func signBoth(t *testing.T, raw []byte) ([]byte, map[string]string) {
	t.Helper()
	rsaKey := newRSAKey(t)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signed, err := delivery.SignDKIM(raw,
		delivery.DKIMOptions{Domain: dkimDomain, Selector: "sw1", Signer: rsaKey},
		delivery.DKIMOptions{Domain: dkimDomain, Selector: "sw1ed", Signer: edKey})
	require.NoError(t, err)
	return signed, map[string]string{
		"sw1._domainkey." + dkimDomain:   dkimRecord(t, crypto.Signer(rsaKey)),
		"sw1ed._domainkey." + dkimDomain: dkimRecord(t, crypto.Signer(edKey)),
	}
}

func TestDKIMVerifiedByDkimpy(t *testing.T) {
	t.Parallel()

	t.Run("RSAAndEd25519BothVerify", func(t *testing.T) {
		t.Parallel()
		signed, records := signBoth(t, unsubscribeMessage())
		require.Contains(t, string(signed), "a=rsa-sha256")
		require.Contains(t, string(signed), "a=ed25519-sha256")
		require.Equal(t, []bool{true, true}, verifyWithDkimpy(t, signed, records))
	})
	t.Run("SignsUnsubscribeAndCustomHeadersOverSigned", func(t *testing.T) {
		t.Parallel()
		signed, _ := signBoth(t, unsubscribeMessage())
		h := signedFields(t, signed, 0)
		for _, f := range []string{"from", "subject", "to", "list-unsubscribe", "list-unsubscribe-post"} {
			require.Equal(t, 2, countOf(h, f), "%s over-signed in %v", f, h)
		}
		for _, f := range []string{"reply-to", "cc", "date", "message-id", "x-campaign", "mime-version", "content-type"} {
			require.Contains(t, h, f)
		}
		require.NotContains(t, h, "received")
	})
	t.Run("AddedUnsubscribeHeaderBreaksBoth", func(t *testing.T) {
		t.Parallel()
		signed, records := signBoth(t, unsubscribeMessage())
		// Added on top, as relays add fields: without over-signing, verifiers would pick the
		// signed (bottom-most) instance and never look at this one.
		tampered := append([]byte("List-Unsubscribe: <https://evil.example/u>\r\n"), signed...)
		require.Equal(t, []bool{false, false}, verifyWithDkimpy(t, tampered, records))
	})
	t.Run("AddedReplyToBreaksSignature", func(t *testing.T) {
		t.Parallel()
		signed, records := signBoth(t, unsubscribeMessage())
		tampered := append([]byte("Reply-To: evil@evil.example\r\n"), signed...)
		require.Equal(t, []bool{false, false}, verifyWithDkimpy(t, tampered, records))
	})
	t.Run("RelayAddedTraceFieldKeepsSignature", func(t *testing.T) {
		t.Parallel()
		signed, records := signBoth(t, unsubscribeMessage())
		require.Equal(t, []bool{true, true}, verifyWithDkimpy(t, append([]byte("Received: from relay by mx\r\n"), signed...), records))
	})
}

// opendkimScript serves the zone with Knot DNS on 127.0.0.1:53 inside a private network
// and mount namespace (the host's resolver and /etc/resolv.conf stay untouched) and runs
// opendkim-testmsg, which verifies through the system resolver; exit 0 means verified.
const opendkimScript = `set -e
ip link set lo up
knotd -c "$DIR/knot.conf" >"$DIR/knot.log" 2>&1 &
knot=$!
# knotd must be gone before the test removes its directory (it writes there until it exits).
trap 'kill $knot 2>/dev/null; wait $knot 2>/dev/null' EXIT
echo "nameserver 127.0.0.1" >"$DIR/resolv.conf"
mount --bind "$DIR/resolv.conf" /etc/resolv.conf
for i in $(seq 200); do
	knotc -c "$DIR/knot.conf" zone-read example.test. >/dev/null 2>&1 && break
	sleep 0.05
done
knotc -c "$DIR/knot.conf" zone-read example.test. >/dev/null || { echo "knotd did not load the zone"; exit 3; }
set +e
opendkim-testmsg <"$DIR/msg.eml"
rc=$?
exit $rc
`

func verifyWithOpenDKIM(t *testing.T, raw []byte, records map[string]string) error {
	t.Helper()
	dir := t.TempDir()
	var zone strings.Builder
	zone.WriteString("$ORIGIN " + dkimDomain + ".\n$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.1\n")
	for name, value := range records {
		rel := strings.TrimSuffix(name, "."+dkimDomain)
		zone.WriteString(rel + " IN TXT " + zoneTXT(value) + "\n")
	}
	_, err := dnstest.KnotConfig(dir, "127.0.0.1@53", map[string]string{dkimDomain: zone.String()})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "msg.eml"), raw, 0o644))
	cmd := exec.Command("unshare", "-mn", "sh", "-c", opendkimScript)
	cmd.Env = append(os.Environ(), "DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "knot.log"))
		return &opendkimError{out: string(out) + string(log), err: err}
	}
	return nil
}

type opendkimError struct {
	out string
	err error
}

func (e *opendkimError) Error() string { return e.err.Error() + ": " + e.out }

// zoneTXT quotes a TXT value in 255-byte strings.
func zoneTXT(v string) string {
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	return strings.Join(append(parts, `"`+v+`"`), " ")
}

func TestDKIMVerifiedByOpenDKIM(t *testing.T) {
	t.Parallel()
	rsaKey := newRSAKey(t)
	records := map[string]string{"sw1._domainkey." + dkimDomain: dkimRecord(t, crypto.Signer(rsaKey))}
	signed, err := delivery.SignDKIM(unsubscribeMessage(), delivery.DKIMOptions{Domain: dkimDomain, Selector: "sw1", Signer: rsaKey})
	require.NoError(t, err)

	t.Run("RSAVerifies", func(t *testing.T) {
		require.NoError(t, verifyWithOpenDKIM(t, signed, records))
	})
	t.Run("Ed25519Verifies", func(t *testing.T) {
		_, edKey, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		edSigned, err := delivery.SignDKIM(unsubscribeMessage(), delivery.DKIMOptions{Domain: dkimDomain, Selector: "sw1ed", Signer: edKey})
		require.NoError(t, err)
		require.NoError(t, verifyWithOpenDKIM(t, edSigned, map[string]string{"sw1ed._domainkey." + dkimDomain: dkimRecord(t, crypto.Signer(edKey))}))
	})
	t.Run("AddedUnsubscribeHeaderFails", func(t *testing.T) {
		tampered := append([]byte("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"), signed...)
		err := verifyWithOpenDKIM(t, tampered, records)
		require.ErrorContains(t, err, "Bad signature")
	})
}
