package notes

import (
	"fmt"
	"strings"
)

// Compat is the GPU compatibility table: GPU class × stage.
type Compat struct {
	// Classes in the order of the classes file; Stages the per-class stages.
	Classes, Stages []string
	// Required marks the classes the channel's gate requires.
	Required map[string]bool
	// Cells maps class → stage → result; a missing cell was not run.
	Cells map[string]map[string]Cell
}

// Cell is one class's result of one stage.
type Cell struct {
	State, Description, URL string
}

// renderCompat writes the table: passed / failed / skipped per cell with
// the recorded description (the performance figures), "not run" when no
// result was recorded.
func renderCompat(b *strings.Builder, c *Compat) {
	if c == nil || len(c.Classes) == 0 {
		return
	}
	b.WriteString("\n### Intel GPU compatibility\n\n| GPU class |")
	for _, s := range c.Stages {
		fmt.Fprintf(b, " %s |", s)
	}
	b.WriteString("\n|---|")
	for range c.Stages {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, cl := range c.Classes {
		name := cl
		if c.Required[cl] {
			name += " (required)"
		}
		fmt.Fprintf(b, "| %s |", name)
		for _, s := range c.Stages {
			fmt.Fprintf(b, " %s |", cellText(c.Cells[cl][s]))
		}
		b.WriteString("\n")
	}
}

func cellText(c Cell) string {
	if c.State == "" {
		return "not run"
	}
	text := c.State
	switch d := strings.TrimSpace(c.Description); {
	case d == "" || d == c.State:
	case strings.HasPrefix(d, c.State+" ("): // "passed (12 passed)"
		text = d
	default:
		text += ": " + strings.TrimPrefix(d, c.State+": ")
	}
	if c.URL != "" {
		text = "[" + text + "](" + c.URL + ")"
	}
	// A table cell is one line without pipes.
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(text)
}
