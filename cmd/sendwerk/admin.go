package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sendwerk/sendwerk/internal/config"
	"github.com/sendwerk/sendwerk/internal/logging"
	"github.com/sendwerk/sendwerk/internal/pgembed"
	"github.com/sendwerk/sendwerk/internal/sendingdomain"
	"github.com/sendwerk/sendwerk/internal/store"
	"github.com/sendwerk/sendwerk/internal/tenant"
	"github.com/sendwerk/sendwerk/internal/validate"
)

const adminUsage = `sendwerk admin — operator tasks, straight on the database

Usage:
  sendwerk admin tenant create --name NAME [--quota N] [--json]
  sendwerk admin tenant list [--limit N] [--json]
  sendwerk admin api-key create --tenant ID --name NAME --scopes read,manage,messages:send
                                [--cidrs 203.0.113.0/24,…] [--expires 2027-01-01T00:00:00Z] [--json]
  sendwerk admin domains due [--limit N] [--json]

It reads the same SENDWERK_* variables and DATABASE_URL as 'sendwerk serve'. Without
DATABASE_URL it uses the embedded development database under SENDWERK_DATA_DIR: the one a
running 'sendwerk serve' has open, or it starts it for the command. Results go to stdout
(human-readable, or JSON with --json); progress goes to stderr. Each command takes
--help for its options.
`

// adminCommand is one `sendwerk admin …` command: its flags are parsed and checked before
// any database is opened, so --help and usage errors touch nothing.
type adminCommand struct {
	fs       *flag.FlagSet
	required []string
	// check validates flag values beyond parsing; nil when there is nothing to check.
	check func() error
	run   func(ctx context.Context, pool *pgxpool.Pool, out *adminOutput) error
}

// adminCommands are the commands by their two words.
var adminCommands = map[string]func(*adminOutput) *adminCommand{
	"tenant create":  adminTenantCreate,
	"tenant list":    adminTenantList,
	"api-key create": adminKeyCreate,
	"domains due":    adminDomainsDue,
}

// runAdmin talks to the database through the services rather than to the HTTP API: it
// works before any server is up or reachable (bootstrapping the first tenant), needs no
// token on the operator's machine, and can show internal state the API does not expose.
func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) > 0 && isHelp(args[0]), len(args) == 2 && isHelp(args[1]):
		fmt.Fprint(stdout, adminUsage)
		return 0
	case len(args) < 2:
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	out := &adminOutput{stdout: stdout, stderr: stderr}
	name := args[0] + " " + args[1]
	newCmd, ok := adminCommands[name]
	if !ok {
		fmt.Fprintf(stderr, "unknown admin command %q\n\n%s", name, adminUsage)
		return 2
	}
	cmd := newCmd(out)
	if code, ok := parseCommandFlags(cmd.fs, args[2:], stdout, stderr); !ok {
		return code
	}
	if err := cmd.validate(); err != nil {
		fmt.Fprintf(stderr, "sendwerk admin: %v\n", err)
		return 2
	}
	cfg, err := config.LoadEnv()
	if err != nil {
		fmt.Fprintf(stderr, "sendwerk: invalid configuration:\n%v\n", err)
		return 2
	}
	pool, closeDB, err := openAdminDatabase(ctx, cfg, out)
	if err != nil {
		fmt.Fprintf(stderr, "sendwerk admin: %v\n", err)
		return 1
	}
	defer closeDB()
	if err := cmd.run(ctx, pool, out); err != nil {
		var verr *validate.Error
		if errors.As(err, &verr) {
			for _, f := range verr.Fields {
				fmt.Fprintf(stderr, "sendwerk admin: %s: %s\n", f.Field, f.Message)
			}
			return 2
		}
		fmt.Fprintf(stderr, "sendwerk admin: %v\n", err)
		return 1
	}
	return 0
}

// openAdminDatabase opens DATABASE_URL, the embedded database a running server has open, or
// starts the embedded cluster for this command, and applies migrations as serve would.
func openAdminDatabase(ctx context.Context, cfg *config.Config, out *adminOutput) (*pgxpool.Pool, func(), error) {
	logger := logging.New(out.stderr, cfg.LogFormat, "warn")
	if cfg.LogLevel == "debug" {
		logger = logging.New(out.stderr, cfg.LogFormat, "debug")
	}
	pool, closeDB, err := connectAdminDatabase(ctx, cfg, logger, out)
	if err != nil {
		return nil, nil, err
	}
	if cfg.AutoMigrate {
		out.progress("checking database migrations")
		if err := store.Migrate(ctx, pool, logger); err != nil {
			closeDB()
			return nil, nil, err
		}
	}
	return pool, closeDB, nil
}

func connectAdminDatabase(ctx context.Context, cfg *config.Config, logger *slog.Logger, out *adminOutput) (*pgxpool.Pool, func(), error) {
	if cfg.Embedded() {
		dir := filepath.Join(cfg.DataDir, "postgres")
		if dsn, ok := pgembed.RunningURL(dir, embeddedDatabase); ok {
			out.progress("using the embedded database of the running server in " + dir)
			pool, err := store.NewPool(ctx, dsn, &store.PoolConfig{MaxConns: 2})
			if err != nil {
				return nil, nil, err
			}
			return pool, pool.Close, nil
		}
		out.progress("starting the embedded PostgreSQL in " + dir + " (no DATABASE_URL)")
	} else {
		out.progress("connecting to DATABASE_URL")
	}
	start := time.Now()
	pool, closeDB, _, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	out.progress(fmt.Sprintf("database ready in %s", time.Since(start).Round(10*time.Millisecond)))
	return pool, closeDB, nil
}

// adminOutput writes results to stdout, as text or JSON, and progress to stderr.
type adminOutput struct {
	stdout, stderr io.Writer
	json           bool
}

func (o *adminOutput) progress(msg string) { fmt.Fprintf(o.stderr, "… %s\n", msg) }

// result prints v as indented JSON with --json, else the human text.
func (o *adminOutput) result(v any, human func(w io.Writer)) error {
	if !o.json {
		human(o.stdout)
		return nil
	}
	enc := json.NewEncoder(o.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newAdminFlags(name, synopsis string, out *adminOutput) *flag.FlagSet {
	fs := newFlagSet("admin "+name, "Usage: "+synopsis+"\n\nSee 'sendwerk admin --help' for the database it uses.\n")
	fs.BoolVar(&out.json, "json", false, "print the result as JSON")
	return fs
}

// validate checks required flags and the command's own rules.
func (c *adminCommand) validate() error {
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range c.required {
		if !set[name] {
			return fmt.Errorf("--%s is required", name)
		}
	}
	if c.check != nil {
		return c.check()
	}
	return nil
}

// tenantJSON and keyJSON are the API's shapes, so scripts can use either.
type tenantJSON struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	MonthlyQuota *int64    `json:"monthly_quota"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

type keyJSON struct {
	ID           string     `json:"id"`
	TenantID     string     `json:"tenant_id"`
	Name         string     `json:"name"`
	Prefix       string     `json:"prefix"`
	Scopes       []string   `json:"scopes"`
	AllowedCIDRs []string   `json:"allowed_cidrs"`
	ExpiresAt    *time.Time `json:"expires_at"`
	CreatedAt    time.Time  `json:"created_at"`
	Status       string     `json:"status"`
	Secret       string     `json:"secret"`
}

func adminTenantCreate(out *adminOutput) *adminCommand {
	fs := newAdminFlags("tenant create", "sendwerk admin tenant create --name NAME [--quota N] [--json]", out)
	name := fs.String("name", "", "the tenant's display name (required)")
	quota := fs.Int64("quota", -1, "messages per calendar month; omit for no quota")
	return &adminCommand{
		fs: fs, required: []string{"name"},
		run: func(ctx context.Context, pool *pgxpool.Pool, out *adminOutput) error {
			var q *int64
			if *quota >= 0 {
				q = quota
			}
			t, err := tenant.NewService(pool).Create(ctx, *name, q)
			if err != nil {
				return err
			}
			v := tenantJSON{ID: t.ID, Name: t.Name, MonthlyQuota: t.MonthlyQuota, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
			return out.result(v, func(w io.Writer) {
				fmt.Fprintf(w, "Created tenant %s (%s), %s.\n", t.ID, t.Name, quotaText(t.MonthlyQuota))
				fmt.Fprintf(w, "Next: sendwerk admin api-key create --tenant %s --name backend --scopes messages:send,read,manage\n", t.ID)
			})
		},
	}
}

func quotaText(q *int64) string {
	if q == nil {
		return "no monthly quota"
	}
	return fmt.Sprintf("monthly quota %d messages", *q)
}

// limitCheck refuses a --limit outside 1–10000.
func limitCheck(limit *int) func() error {
	return func() error {
		if *limit < 1 || *limit > 10000 {
			return errors.New("--limit must be between 1 and 10000")
		}
		return nil
	}
}

func adminTenantList(out *adminOutput) *adminCommand {
	fs := newAdminFlags("tenant list", "sendwerk admin tenant list [--limit N] [--json]", out)
	limit := fs.Int("limit", 100, "show at most this many, oldest first")
	return &adminCommand{
		fs:    fs,
		check: limitCheck(limit),
		run: func(ctx context.Context, pool *pgxpool.Pool, out *adminOutput) error {
			tenants, err := tenant.NewService(pool).List(ctx, "", *limit)
			if err != nil {
				return err
			}
			items := make([]tenantJSON, len(tenants))
			for i, t := range tenants {
				items[i] = tenantJSON{ID: t.ID, Name: t.Name, MonthlyQuota: t.MonthlyQuota, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
			}
			return out.result(map[string]any{"items": items}, func(w io.Writer) {
				if len(items) == 0 {
					fmt.Fprintln(w, "No tenants yet; create one with: sendwerk admin tenant create --name NAME")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tMONTHLY QUOTA\tCREATED")
				for _, t := range items {
					q := "none"
					if t.MonthlyQuota != nil {
						q = fmt.Sprint(*t.MonthlyQuota)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Name, q, t.CreatedAt.UTC().Format(time.RFC3339))
				}
				_ = tw.Flush()
			})
		},
	}
}

func adminKeyCreate(out *adminOutput) *adminCommand {
	fs := newAdminFlags("api-key create", "sendwerk admin api-key create --tenant ID --name NAME --scopes LIST [--cidrs LIST] [--expires TIME] [--json]", out)
	tenantID := fs.String("tenant", "", "the tenant's id, ten_… (required)")
	name := fs.String("name", "", "a label to tell keys apart (required)")
	scopes := fs.String("scopes", "", "comma-separated: messages:send, read, manage (required)")
	cidrs := fs.String("cidrs", "", "comma-separated client networks the key may be used from; omit for anywhere")
	expires := fs.String("expires", "", "when the key stops working, RFC 3339; omit for never")
	var expiresAt *time.Time
	return &adminCommand{
		fs: fs, required: []string{"tenant", "name", "scopes"},
		check: func() error {
			if *expires != "" {
				t, err := time.Parse(time.RFC3339, *expires)
				if err != nil {
					return fmt.Errorf("--expires: want RFC 3339, like 2027-01-01T00:00:00Z")
				}
				expiresAt = &t
			}
			return nil
		},
		run: func(ctx context.Context, pool *pgxpool.Pool, out *adminOutput) error {
			svc := tenant.NewService(pool)
			if _, err := svc.Get(ctx, *tenantID); tenant.IsNotFound(err) {
				return fmt.Errorf("no tenant with id %q", *tenantID)
			} else if err != nil {
				return err
			}
			k, secret, err := svc.CreateKey(ctx, *tenantID, tenant.KeyParams{
				Name: *name, Scopes: splitList(*scopes), AllowedCIDRs: splitList(*cidrs), ExpiresAt: expiresAt,
			})
			if err != nil {
				return err
			}
			v := keyJSON{ID: k.ID, TenantID: k.TenantID, Name: k.Name, Prefix: k.Prefix, Scopes: scopeStrings(k.Scopes),
				AllowedCIDRs: prefixStrings(k), ExpiresAt: k.ExpiresAt, CreatedAt: k.CreatedAt, Status: k.Status(time.Now()), Secret: secret}
			return out.result(v, func(w io.Writer) {
				fmt.Fprintf(w, "Created API key %s (%s) for tenant %s, scopes %s.\n", k.ID, k.Name, k.TenantID, strings.Join(v.Scopes, ", "))
				fmt.Fprintf(w, "Secret, shown this once (Sendwerk keeps only a hash):\n\n  %s\n\n", secret)
			})
		},
	}
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func scopeStrings(scopes []tenant.Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}

func prefixStrings(k *tenant.APIKey) []string {
	out := make([]string, len(k.AllowedCIDRs))
	for i, p := range k.AllowedCIDRs {
		out[i] = p.String()
	}
	return out
}

type dueDomainJSON struct {
	ID            string     `json:"id"`
	TenantID      string     `json:"tenant_id"`
	Domain        string     `json:"domain"`
	Status        string     `json:"status"`
	NextCheckAt   time.Time  `json:"next_check_at"`
	LastCheckedAt *time.Time `json:"last_checked_at"`
}

func adminDomainsDue(out *adminOutput) *adminCommand {
	fs := newAdminFlags("domains due", "sendwerk admin domains due [--limit N] [--json]", out)
	limit := fs.Int("limit", 100, "show at most this many")
	return &adminCommand{
		fs:    fs,
		check: limitCheck(limit),
		run: func(ctx context.Context, pool *pgxpool.Pool, out *adminOutput) error {
			now := time.Now()
			due, err := sendingdomain.ListDue(ctx, pool, now, *limit)
			if err != nil {
				return err
			}
			items := make([]dueDomainJSON, len(due))
			for i, d := range due {
				items[i] = dueDomainJSON{ID: d.ID, TenantID: d.TenantID, Domain: d.Name, Status: d.Status, NextCheckAt: d.NextCheckAt, LastCheckedAt: d.LastCheckedAt}
			}
			return out.result(map[string]any{"items": items}, func(w io.Writer) {
				if len(items) == 0 {
					fmt.Fprintln(w, "No domain checks are due.")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "DOMAIN\tSTATUS\tDUE SINCE\tLAST CHECKED\tTENANT\tID")
				for _, d := range items {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Domain, d.Status, ago(now, &d.NextCheckAt), ago(now, d.LastCheckedAt), d.TenantID, d.ID)
				}
				_ = tw.Flush()
				fmt.Fprintf(w, "%d due; a running server's scheduler claims them on its next run.\n", len(items))
			})
		},
	}
}

// ago says how long before now t was, to the second, or "never".
func ago(now time.Time, t *time.Time) string {
	if t == nil {
		return "never"
	}
	return now.Sub(*t).Round(time.Second).String() + " ago"
}
