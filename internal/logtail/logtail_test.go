package logtail

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLines(t *testing.T) {
	tests := []struct {
		name, in string
		n        int
		want     string
	}{
		{"empty", "", 3, ""},
		{"blank lines only", "\n  \n\t\n", 3, ""},
		{"fewer than n", "a\nb\n", 3, "a | b"},
		{"last n", "one\ntwo\nthree\nfour\n", 2, "three | four"},
		{"blank lines skipped and lines trimmed", "  a  \n\n\tb\n\n", 5, "a | b"},
		{"carriage returns trimmed", "a\r\nb\r\n", 5, "a | b"},
		{"zero", "a\nb", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Lines(tt.in, tt.n))
		})
	}
}

func TestLinesExcept(t *testing.T) {
	warning := func(l string) bool { return strings.HasPrefix(l, "warning:") }
	in := "error: first\nwarning: noise\nerror: second\nwarning: more noise\n"
	assert.Equal(t, "error: first | error: second", LinesExcept(in, 2, warning))
	assert.Equal(t, "error: second | warning: more noise", LinesExcept(in, 2, nil))
}
