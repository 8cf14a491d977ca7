package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/hanode/hanode/conf"
	"github.com/hanode/hanode/ha"
)

// TestExitStatus: configuration and usage errors exit 78 (EX_CONFIG), the
// cluster's refusals 77 (EX_NOPERM), every other error 1; no error of
// hanode's own exits 2, which the Go runtime uses for a panic and SIGQUIT.
func TestExitStatus(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"no error", nil, 0},
		{"runtime failure", errors.New("listen :9640: address already in use"), 1},
		{"invalid configuration", fmt.Errorf("load: %w", &conf.FieldError{Key: "NAME", Msg: "required"}), 78},
		{"usage", usageError{errors.New("unknown flag: --bogus")}, 78},
		{"name in use", fmt.Errorf("name n1 held by pid 7 on h: %w", ha.ErrNameInUse), 77},
		{"group mismatch", fmt.Errorf("group g: %w", ha.ErrGroupMismatch), 77},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, exitStatus(tc.err))
		})
	}
}

// TestExecuteUsageErrorsExit78: misuse of the command line is final, like a
// bad configuration: an unknown command, extra arguments, an unknown flag.
func TestExecuteUsageErrorsExit78(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.env")
	for _, args := range [][]string{
		{"bogus"},
		{"run", "extra"},
		{"version", "x"},
		{"check-config", "--bogus"},
		{"check-config", "--env-file", missing},
	} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			assert.Equal(t, exitConfig, execute(args))
		})
	}
	assert.Equal(t, exitOK, execute([]string{"version"}))
}
