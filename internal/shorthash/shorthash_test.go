package shorthash

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOf(t *testing.T) {
	tests := []struct {
		name, in string
		n        int
		want     string
	}{
		{"commit", "0123456789abcdef0123456789abcdef01234567", Commit, "0123456"},
		{"long", "0123456789abcdef0123456789abcdef01234567", Long, "0123456789ab"},
		{"shorter than n", "abc", Commit, "abc"},
		{"exactly n", "0123456", Commit, "0123456"},
		{"empty", "", Long, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Of(tt.in, tt.n))
		})
	}
}
