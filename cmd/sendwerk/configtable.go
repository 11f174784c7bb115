package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/sendwerk/sendwerk/internal/config"
)

// printConfigTable prints the settings table as markdown; docs/configuration.md's table is this output.
func printConfigTable(w io.Writer) {
	fmt.Fprintln(w, "| variable | default | meaning |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, v := range config.Vars() {
		def := v.Default
		if def != "" {
			def = "`" + def + "`"
		}
		help := v.Help
		if v.Secret {
			help += " Also `" + v.Name + "_FILE`."
		}
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", v.Name, def, strings.ReplaceAll(help, "|", "\\|"))
	}
}
