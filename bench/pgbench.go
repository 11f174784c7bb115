package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The pgbench peer runs the statements one single-message submission runs, in the same
// order and with the same values, so the ratio is Sendwerk's cost on top of its SQL:
// HTTP, JSON, validation, MIME rendering, and its pgx round trips.
//
// The statements are not copied by hand: the benchmark switches statement logging on,
// submits one message (the same request as the load), switches it off, and builds the
// script from the CSV log: every statement of Sendwerk's own queries (db/queries) and of
// River's insert path, the transaction's BEGIN and COMMIT, with each $n bound to a pgbench
// variable holding the logged value. Per transaction, the message id is made unique
// (from the client id and a random number) and the River job id comes from the INSERT's
// RETURNING (\gset), as in the real transaction.

// loggedStatement is one statement from the CSV log.
type loggedStatement struct {
	pid    string
	query  string
	params []*string // nil: NULL
}

// riverInsertPath are River's statements of InsertTx.
var riverInsertPath = []string{"JobInsertFastMany", "PGNotifyMany"}

func (e *env) writePGBenchScript(ctx context.Context) (string, error) {
	names, err := sendwerkQueryNames()
	if err != nil {
		return "", err
	}
	names = append(names, riverInsertPath...)
	logPath := filepath.Join(e.dir, "pg", "data", "log", "postgresql.csv")
	conn, err := pgx.Connect(ctx, e.dbURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	setLogging := func(v string) error {
		if _, err := conn.Exec(ctx, "ALTER SYSTEM SET log_statement = '"+v+"'"); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // backends apply the reload before their next command
		return nil
	}
	if err := setLogging("all"); err != nil {
		return "", fmt.Errorf("error switching statement logging on: %w", err)
	}
	offset := fileSize(logPath)
	acc, err := e.load.submit(ctx, e.load.body(senderDKIM, later()), true)
	if err != nil {
		return "", err
	}
	time.Sleep(100 * time.Millisecond)
	off := "none"
	if e.o.sqlLog {
		off = "all"
	}
	if err := setLogging(off); err != nil {
		return "", fmt.Errorf("error switching statement logging off: %w", err)
	}
	var jobID int64
	if err := conn.QueryRow(ctx, "SELECT job_id FROM messages WHERE id = $1", acc.ID).Scan(&jobID); err != nil {
		return "", fmt.Errorf("error reading the captured message: %w", err)
	}
	stmts, err := readStatements(logPath, offset)
	if err != nil {
		return "", err
	}
	sel, err := submissionStatements(stmts, names)
	if err != nil {
		return "", err
	}
	script, vars := pgbenchScript(sel, acc.ID, jobID)
	path := filepath.Join(e.dir, "submit.pgbench")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		return "", err
	}
	e.pgVars = vars
	progress("  pgbench script: %d statements captured from one submission (%s)", len(sel), path)
	return path, nil
}

// sendwerkQueryNames are the sqlc query names of db/queries.
func sendwerkQueryNames() ([]string, error) {
	files, _ := filepath.Glob("db/queries/*.sql")
	if len(files) == 0 {
		return nil, errors.New("db/queries/*.sql not found: run the benchmark from the repository root")
	}
	re := regexp.MustCompile(`(?m)^-- name: (\w+)`)
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
	}
	return names, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

var (
	executeRe = regexp.MustCompile(`(?s)^execute [^:]+: (.*)$`)
	nameRe    = regexp.MustCompile(`-- name: (\w+)`)
)

// readStatements parses the CSV log from offset: PostgreSQL 15's csvlog columns are
// log_time, user, database, pid, …, message (13), detail (14).
func readStatements(path string, offset int64) ([]loggedStatement, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = -1
	var out []loggedStatement
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("error reading %s: %w", path, err)
		}
		if len(rec) < 15 {
			continue
		}
		msg, detail := rec[13], rec[14]
		var q string
		switch {
		case strings.HasPrefix(msg, "statement: "):
			q = strings.TrimPrefix(msg, "statement: ")
		case executeRe.MatchString(msg):
			q = executeRe.FindStringSubmatch(msg)[1]
		default:
			continue
		}
		params, err := parseParams(detail)
		if err != nil {
			return nil, fmt.Errorf("error parsing %q: %w", detail, err)
		}
		out = append(out, loggedStatement{pid: rec[3], query: q, params: params})
	}
	return out, nil
}

// parseParams reads "parameters: $1 = 'a', $2 = NULL, …".
func parseParams(detail string) ([]*string, error) {
	s, ok := strings.CutPrefix(detail, "parameters: ")
	if !ok {
		return nil, nil
	}
	var out []*string
	for len(s) > 0 {
		s = strings.TrimPrefix(s, ", ")
		rest, ok := strings.CutPrefix(s, "$")
		if !ok {
			return nil, errors.New("want $n")
		}
		i := strings.Index(rest, " = ")
		if i < 0 {
			return nil, errors.New("want ' = '")
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n != len(out)+1 {
			return nil, fmt.Errorf("parameter %q out of order", rest[:i])
		}
		rest = rest[i+3:]
		if v, ok := strings.CutPrefix(rest, "NULL"); ok {
			out = append(out, nil)
			s = v
			continue
		}
		if !strings.HasPrefix(rest, "'") {
			return nil, errors.New("want a quoted value")
		}
		var b strings.Builder
		j := 1
		for ; j < len(rest); j++ {
			if rest[j] == '\'' {
				if j+1 < len(rest) && rest[j+1] == '\'' {
					b.WriteByte('\'')
					j++
					continue
				}
				break
			}
			b.WriteByte(rest[j])
		}
		if j >= len(rest) {
			return nil, errors.New("unterminated value")
		}
		v := b.String()
		out = append(out, &v)
		s = rest[j+1:]
	}
	return out, nil
}

// submissionStatements picks the submission's statements: the named queries in names, and
// BEGIN/COMMIT around the one that inserts the message, on its connection.
func submissionStatements(all []loggedStatement, names []string) ([]loggedStatement, error) {
	insert := slices.IndexFunc(all, func(s loggedStatement) bool { return queryName(s.query) == "MessageInsert" })
	if insert < 0 {
		return nil, errors.New("the captured log holds no MessageInsert; is statement logging working?")
	}
	pid := all[insert].pid
	begin, commit := -1, -1
	for i := insert - 1; i >= 0; i-- {
		if all[i].pid == pid && strings.EqualFold(strings.TrimSpace(all[i].query), "begin") {
			begin = i
			break
		}
	}
	for i := insert + 1; i < len(all); i++ {
		if all[i].pid == pid && strings.EqualFold(strings.TrimSpace(all[i].query), "commit") {
			commit = i
			break
		}
	}
	if begin < 0 || commit < 0 {
		return nil, errors.New("no BEGIN/COMMIT around MessageInsert in the captured log")
	}
	var out []loggedStatement
	for i, s := range all {
		if i > commit {
			break
		}
		inTx := i >= begin && s.pid == pid
		switch {
		case i == begin || i == commit:
			out = append(out, s)
		case slices.Contains(names, queryName(s.query)) && (inTx || i < begin):
			out = append(out, s)
		}
	}
	return out, nil
}

func queryName(q string) string {
	if m := nameRe.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	return ""
}

var dollarRe = regexp.MustCompile(`\$(\d+)`)

// pgbenchScript turns the statements into a pgbench script and its -D variables.
// eventIDRe matches a stream event's id (ids.Event: prefix and Crockford base32).
var eventIDRe = regexp.MustCompile(`^evt_[0-9a-z]+$`)

// eventIDArrayRe matches an array of one event id (the queued step's statement takes arrays).
var eventIDArrayRe = regexp.MustCompile(`^\{evt_[0-9a-z]+\}$`)

func pgbenchScript(stmts []loggedStatement, messageID string, jobID int64) (string, []string) {
	var b strings.Builder
	var vars []string
	b.WriteString("-- One single-message submission, captured from sendwerk serve by the benchmark.\n")
	b.WriteString("\\set r random(1, 1000000000000)\n")
	jobArray := "{" + strconv.FormatInt(jobID, 10) + "}"
	jobInserted := false
	for k, s := range stmts {
		name := queryName(s.query)
		if name != "" {
			fmt.Fprintf(&b, "-- %s\n", name)
		}
		q := stripComments(s.query)
		q = dollarRe.ReplaceAllStringFunc(q, func(m string) string {
			n, _ := strconv.Atoi(m[1:])
			if n < 1 || n > len(s.params) {
				return m
			}
			v := s.params[n-1]
			switch {
			case v == nil:
				return "NULL"
			case *v == "": // pgbench -D refuses empty values
				return "''"
			case *v == jobArray && jobInserted && name != "UsageAdd":
				// UsageAdd's shards ({n}, smallint) can equal a young cluster's first job
				// ids; taking one for the job id made pgbench count shard 57,374.
				return "('{' || :j_id || '}')"
			}
			vn := fmt.Sprintf("p%d_%d", k, n)
			if eventIDRe.MatchString(*v) {
				// An event's id is new per event, like the message's.
				return fmt.Sprintf("('evt_pgb' || :client_id || 'x' || :r || 'k%d')", k)
			}
			if eventIDArrayRe.MatchString(*v) {
				return fmt.Sprintf("('{evt_pgb' || :client_id || 'x' || :r || 'k%d}')", k)
			}
			if strings.Contains(*v, messageID) {
				vars = append(vars, vn+"="+strings.ReplaceAll(*v, messageID, "@MSGID@"))
				expr := "(replace(:" + vn + ", '@MSGID@', 'msg_pgb' || :client_id || 'x' || :r))"
				if t := strings.TrimSpace(*v); (strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[")) && json.Valid([]byte(t)) {
					// replace() yields text; a JSON document naming the message (an event's
					// data) goes into a jsonb column.
					expr += "::jsonb"
				}
				return expr
			}
			vars = append(vars, vn+"="+*v)
			return ":" + vn
		})
		b.WriteString(strings.TrimSpace(q))
		if name == "JobInsertFastMany" {
			jobInserted = true
			b.WriteString("\n\\gset j_\n")
		} else {
			b.WriteString(";\n")
		}
	}
	return b.String(), vars
}

// stripComments drops "--" comment lines and blank lines (pgbench substitutes :names even
// inside comments).
func stripComments(q string) string {
	var out []string
	for _, line := range strings.Split(q, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// runPGBench runs the script with c clients for secs seconds and reads per-transaction
// latencies from its log.
func (e *env) runPGBench(ctx context.Context, script string, c int, secs float64) (rateLatency, error) {
	logDir, err := os.MkdirTemp(e.dir, "pgblog")
	if err != nil {
		return rateLatency{}, err
	}
	defer os.RemoveAll(logDir)
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(c), "-j", strconv.Itoa(min(c, runtime.NumCPU())),
		"-T", strconv.Itoa(int(secs + 0.5)), "-f", script, "-l", "--log-prefix", filepath.Join(logDir, "pgbench"),
		"-h", e.pgHost, "-p", e.pgPort, "-U", "postgres"}
	for _, v := range e.pgVars {
		args = append(args, "-D", v)
	}
	args = append(args, "sendwerk")
	cmd := exec.CommandContext(ctx, e.pgBin, args...)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") }), "PGAPPNAME=pgbench")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return rateLatency{}, fmt.Errorf("pgbench -c %d: %v\n%s", c, err, out)
	}
	m := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`).FindSubmatch(out)
	if m == nil {
		return rateLatency{}, fmt.Errorf("pgbench -c %d: no tps in its output:\n%s", c, out)
	}
	if f := regexp.MustCompile(`number of failed transactions: ([1-9][0-9]*)`).FindSubmatch(out); f != nil {
		return rateLatency{}, fmt.Errorf("pgbench -c %d: %s failed transactions:\n%s", c, f[1], out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	var lats []time.Duration
	files, _ := filepath.Glob(filepath.Join(logDir, "pgbench*"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return rateLatency{}, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			us, err := strconv.ParseInt(f[2], 10, 64)
			if err == nil {
				lats = append(lats, time.Duration(us)*time.Microsecond)
			}
		}
	}
	sum := summarize(lats)
	return rateLatency{PerSecond: tps, Count: sum.N, latencySummary: sum}, nil
}
