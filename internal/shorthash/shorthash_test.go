package shorthash

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestShort(t *testing.T) {
	const sha = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"commit", Commit(sha), "0123456"},
		{"long", Long(sha), "0123456789ab"},
		{"shorter than n", Commit("abc"), "abc"},
		{"exactly n", Of("0123456", CommitLen), "0123456"},
		{"empty", Long(""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got)
		})
	}
}
