package clierr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, ExitOK},
		{"usage", Usagef("unknown engine %q", "x"), ExitUsage},
		{"wrapped usage", fmt.Errorf("build: %w", Usagef("bad")), ExitUsage},
		{"failed", Failedf("2 outputs failed"), ExitFailed},
		{"plain", errors.New("boom"), ExitFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Code(tt.err))
		})
	}
	assert.Nil(t, Usage(nil))
}
