package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// headingSlug is the anchor GitHub gives a markdown heading.
func headingSlug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestDocLinks checks that every in-page anchor of README.md and docs/*.md names a heading
// and every relative link names a file of the repository: the table of contents and the
// "pick your path" block lead somewhere.
func TestDocLinks(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	files = append(files, "../../README.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading := regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		text := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(string(b), "")
		anchors := map[string]bool{}
		for _, h := range heading.FindAllStringSubmatch(text, -1) {
			anchors[headingSlug(h[1])] = true
		}
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			if path == "" {
				require.True(t, anchors[anchor], "%s links to #%s, which is no heading there", f, anchor)
				continue
			}
			_, err := os.Stat(filepath.Join(filepath.Dir(f), path))
			require.NoError(t, err, "%s links to %s", f, target)
		}
	}
}

// stateDiagram returns the states and transitions (from -> set of to) of a Mermaid
// stateDiagram block of README.md.
func stateDiagram(t *testing.T, block string) (states []string, edges map[string][]string) {
	t.Helper()
	edges = map[string][]string{}
	edge := regexp.MustCompile(`^\s*(\S+) --> (\S+?)(:.*)?$`)
	for _, line := range strings.Split(readmeBlock(t, block), "\n") {
		m := edge.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, s := range m[1:3] {
			if s != "[*]" && !slices.Contains(states, s) {
				states = append(states, s)
			}
		}
		edges[m[1]] = append(edges[m[1]], m[2])
	}
	slices.Sort(states)
	return states, edges
}

// sqlStates returns the quoted values of the first "status IN (...)" after marker in file.
func sqlStates(t *testing.T, file, marker string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../..", file))
	require.NoError(t, err)
	s := string(b)
	i := strings.Index(s, marker)
	require.GreaterOrEqual(t, i, 0, "%s lacks %q", file, marker)
	m := regexp.MustCompile(`status IN \(([^)]*)\)`).FindStringSubmatch(s[i:])
	require.NotNil(t, m)
	var out []string
	for _, q := range regexp.MustCompile(`'([a-z_]+)'`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, q[1])
	}
	slices.Sort(out)
	return out
}

// TestReadmeStateDiagrams checks the README's state diagrams against the code: the states
// are exactly those the database allows, and the transitions the SQL guards are drawn.
func TestReadmeStateDiagrams(t *testing.T) {
	t.Parallel()
	t.Run("Message", func(t *testing.T) {
		states, edges := stateDiagram(t, "message-states")
		require.Equal(t, sqlStates(t, "db/migrations/00004_messages.sql", "CREATE TABLE messages"), states)
		require.Equal(t, []string{"queued"}, edges["[*]"], "a message starts queued")
		for _, from := range sqlStates(t, "db/queries/messages.sql", "name: MessageCancel") {
			require.Contains(t, edges[from], "cancelled", "cancel is allowed from %s", from)
		}
		for _, from := range sqlStates(t, "db/queries/messages.sql", "name: MessageClaimAttempts") {
			if from != "sending" { // a crashed attempt restarts; the prose says so
				require.Contains(t, edges[from], "sending", "an attempt may start from %s", from)
			}
		}
		for _, final := range []string{"delivered", "failed", "cancelled"} {
			require.Equal(t, []string{"[*]"}, edges[final], "%s is final", final)
		}
	})
	t.Run("Domain", func(t *testing.T) {
		states, edges := stateDiagram(t, "domain-states")
		require.Equal(t, sqlStates(t, "db/migrations/00003_sending_domains.sql", "CREATE TABLE sending_domains"), states)
		require.Equal(t, []string{"pending"}, edges["[*]"])
		// The transitions of sendingdomain's state machine (state.go, Config.next).
		require.ElementsMatch(t, []string{"verified"}, edges["pending"])
		require.ElementsMatch(t, []string{"at_risk"}, edges["verified"])
		require.ElementsMatch(t, []string{"verified", "revoked"}, edges["at_risk"])
		require.ElementsMatch(t, []string{"verified"}, edges["revoked"])
	})
}

// TestLicense checks LICENSE is the Apache License 2.0 that openapi.yaml and the TypeScript
// client's package.json declare.
func TestLicense(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../LICENSE")
	require.NoError(t, err)
	require.Regexp(t, `^\s*Apache License\s+Version 2\.0, January 2004`, string(b))
	require.Contains(t, string(b), "END OF TERMS AND CONDITIONS")
	spec, err := os.ReadFile("../../openapi.yaml")
	require.NoError(t, err)
	require.Regexp(t, `license:\s+name: Apache-2\.0`, string(spec))
	pkg, err := os.ReadFile("../../clients/ts/package.json")
	require.NoError(t, err)
	var p struct{ License string }
	require.NoError(t, json.Unmarshal(pkg, &p))
	require.Equal(t, "Apache-2.0", p.License)
}

// TestReadmeContents checks the README's table of contents lists every section, in order.
func TestReadmeContents(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	text := string(b)
	start := strings.Index(text, "**Contents:**")
	require.GreaterOrEqual(t, start, 0)
	contents := text[start : start+strings.Index(text[start:], "\n\n")]
	var linked []string
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(contents, -1) {
		linked = append(linked, m[1])
	}
	var sections []string
	body := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(text, "")
	for _, h := range regexp.MustCompile(`(?m)^## (.+)$`).FindAllStringSubmatch(body, -1) {
		sections = append(sections, headingSlug(h[1]))
	}
	require.Equal(t, sections, linked, "the Contents line lists every ## section of README.md, in order")
}
