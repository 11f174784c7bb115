package sendwerk_test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeShowsExample keeps the README's send example equal to Example_send, which runs.
func TestReadmeShowsExample(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	start, end := strings.Index(s, "\t// readme:start\n"), strings.Index(s, "\t// readme:end\n")
	if start < 0 || end < start {
		t.Fatal("example_test.go lacks the readme markers")
	}
	var want strings.Builder
	for _, line := range strings.SplitAfter(s[start+len("\t// readme:start\n"):end], "\n") {
		want.WriteString(strings.TrimPrefix(line, "\t"))
	}
	if !strings.Contains(string(readme), "```go\n"+want.String()+"```") {
		t.Errorf("README.md's send example differs from Example_send; copy it:\n%s", want.String())
	}
}
