package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGenManWritesOnePagePerVisibleCommand: the packaged man pages cover
// every command an operator uses, and none of the hidden internal ones.
func TestGenManWritesOnePagePerVisibleCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "0")
	require.Equal(t, exitOK, execute([]string{"gen-man", dir}))
	for _, page := range []string{"hanode.1", "hanode-run.1", "hanode-status.1", "hanode-check-config.1", "hanode-version.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		require.NoError(t, err)
		assert.Contains(t, string(b), `.TH "HANODE" "1" "Jan 1970" "hanode `+version+`" "hanode manual"`, page)
	}
	root, err := os.ReadFile(filepath.Join(dir, "hanode.1"))
	require.NoError(t, err)
	assert.Contains(t, string(root), "/etc/default/hanode", "the description names the configuration file")
	assert.Contains(t, string(root), "--version", "the root page lists --version")
	pages, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	for _, p := range pages {
		assert.False(t, strings.Contains(p, "duty-guard") || strings.Contains(p, "gen-man"), "hidden command documented: %s", p)
	}
}

// TestVersionFlagPrintsLikeVersionCommand: `hanode --version` and `hanode
// version` print the same line.
func TestVersionFlagPrintsLikeVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		root := newRootCmd()
		var out strings.Builder
		root.SetOut(&out)
		root.SetArgs(args)
		require.NoError(t, root.Execute(), args)
		assert.Equal(t, "hanode "+version+"\n", out.String(), args)
	}
}
