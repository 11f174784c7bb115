package sendingdomain

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/sendwerk/sendwerk/internal/dbtest"
	"github.com/sendwerk/sendwerk/internal/dnscheck"
	"github.com/sendwerk/sendwerk/internal/dnstest"
	"github.com/sendwerk/sendwerk/internal/secret"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/tenant"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const (
	testSecretKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	platformSPF   = "_spf.platform.test"
	// platformZone is the platform's own SPF record, which customers include.
	platformZone = `_spf.platform.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"` + "\n"
)

var platformNets = []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")}

// clock is the state machine's clock, moved by tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testBundle struct {
	ctx      context.Context
	db       store.DB
	dns      *dnstest.Server
	svc      *Service
	clock    *clock
	tenantID string
}

// setup gives a service over a rolled-back transaction, a DNS server serving the platform's
// SPF record, a clock and a tenant. cfg may change the defaults.
func setup(t *testing.T, cfg *Config) *testBundle {
	t.Helper()
	ctx := context.Background()
	return setupDB(t, dbtest.TestTx(ctx, t), cfg)
}

func setupDB(t *testing.T, db store.DB, cfg *Config) *testBundle {
	t.Helper()
	ctx := context.Background()
	srv := dnstest.NewServer(t, platformZone)
	box, err := secret.NewBox(testSecretKey)
	require.NoError(t, err)
	c := Config{SPFInclude: platformSPF, SPFNetworks: platformNets, KeyBits: 1024}
	if cfg != nil {
		c = *cfg
	}
	resolver := dnscheck.NewResolver(&dnscheck.ResolverConfig{Servers: []string{srv.Addr()}, Timeout: 250 * time.Millisecond, Attempts: 1})
	svc, err := NewService(db, box, resolver, &c)
	require.NoError(t, err)
	clk := &clock{now: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)}
	svc.NowFunc = clk.Now
	ten, err := tenant.NewService(db).Create(ctx, "Acme", nil)
	require.NoError(t, err)
	return &testBundle{ctx: ctx, db: db, dns: srv, svc: svc, clock: clk, tenantID: ten.ID}
}

func (b *testBundle) create(t *testing.T, name string) *Domain {
	t.Helper()
	d, err := b.svc.Create(b.ctx, b.tenantID, name)
	require.NoError(t, err)
	return d
}

// records returns d's records as zone-file lines by purpose, rendered by ZoneFile (so the
// tests also prove that what customers paste works).
func (b *testBundle) records(t *testing.T, d *Domain) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range b.svc.Records(d) {
		zone := ZoneFile(d, []Record{r})
		for _, line := range strings.Split(zone, "\n") {
			if line == "" || strings.HasPrefix(line, ";") {
				continue
			}
			if r.Selector != "" {
				out[r.Purpose+":"+r.Selector] = line
			}
			if _, ok := out[r.Purpose]; !ok {
				out[r.Purpose] = line // the first (active) key's record for "dkim"
			}
		}
	}
	return out
}

// serve replaces the DNS zone with the platform's records, d's records for purposes
// ("ownership", "dkim", "spf", "dmarc") and extra zone lines.
func (b *testBundle) serve(t *testing.T, d *Domain, purposes []string, extra ...string) {
	t.Helper()
	recs := b.records(t, d)
	zone := platformZone
	for _, p := range purposes {
		require.Contains(t, recs, p)
		zone += recs[p] + "\n"
	}
	b.dns.SetZone(zone + strings.Join(extra, "\n") + "\n")
}

var allRecords = []string{CheckOwnership, CheckSPF, CheckDKIM, CheckDMARC}

// check runs a scheduled check and returns the domain after it.
func (b *testBundle) check(t *testing.T, d *Domain) (*Domain, *Check) {
	t.Helper()
	out, chk, err := b.svc.RunCheck(b.ctx, b.tenantID, d.ID)
	require.NoError(t, err)
	return out, chk
}

// outage makes every name a check of d asks fail with fault.
func (b *testBundle) outage(d *Domain, fault func(name string)) {
	for _, name := range []string{d.Name, d.DKIMSelector + "._domainkey." + d.Name, "_dmarc." + d.Name, platformSPF} {
		fault(name)
	}
}

func (b *testBundle) clearOutage(d *Domain) {
	b.outage(d, b.dns.Clear)
}

func (b *testBundle) events(t *testing.T, d *Domain) []*Event {
	t.Helper()
	es, err := b.svc.ListEvents(b.ctx, b.tenantID, d.ID, "", 100)
	require.NoError(t, err)
	return es
}

func resultOf(t *testing.T, results []dnscheck.CheckResult, check string) dnscheck.CheckResult {
	t.Helper()
	for _, r := range results {
		if r.Check == check {
			return r
		}
	}
	t.Fatalf("no %s result in %+v", check, results)
	return dnscheck.CheckResult{}
}

func servfail(srv *dnstest.Server) func(string) {
	return func(name string) { srv.SetRcode(name, dns.RcodeServerFailure) }
}
