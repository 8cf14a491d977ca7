package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hanode/hanode/conf"
)

// TestReloadAppliesLogLevelAndNamesTheRest: a reload applies LOG_LEVEL,
// names every other changed key as needing a restart (again at the next
// reload: it is still not applied), and a file that no longer loads
// changes nothing.
func TestReloadAppliesLogLevelAndNamesTheRest(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hanode")
	write := func(s string) { require.NoError(t, os.WriteFile(file, []byte(s), 0o644)) }
	load := func() (*conf.Config, error) { return conf.Load(conf.LoadOptions{EnvFile: file}) }
	write("NAME=a\nROLE=primary\nLOG_LEVEL=info\n")
	cfg, err := load()
	require.NoError(t, err)

	core, logs := observer.New(zapcore.DebugLevel)
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	sd, msgs := fakeNotifier(nil)
	sd.Status("active (standalone: no HA_ID)", true)
	r := newReloader(cfg, load, level, zap.New(core), sd)

	write("NAME=a\nROLE=primary\nLOG_LEVEL=debug\nNET_ID=2\nREGION=mars\n")
	r.reload()
	assert.Equal(t, zapcore.DebugLevel, level.Level())
	e := logs.FilterMessage("configuration reloaded; changed keys that need a restart were not applied").All()
	require.Len(t, e, 1)
	assert.Equal(t, []any{"LOG_LEVEL"}, e[0].ContextMap()["applied"])
	assert.ElementsMatch(t, []any{"NET_ID", "REGION"}, e[0].ContextMap()["need_restart"])
	assert.Equal(t, 1, msgs.count("RELOADING=1"))
	assert.Equal(t, 2, msgs.count("READY=1"), "READY=1 after the reload")

	write("NAME=a\nROLE=bogus\nLOG_LEVEL=error\n")
	r.reload()
	assert.Equal(t, zapcore.DebugLevel, level.Level(), "a bad file changed the level")
	assert.Equal(t, 1, logs.FilterMessage("configuration reload failed; the running configuration stays in force").Len())

	write("NAME=a\nROLE=primary\nLOG_LEVEL=debug\nNET_ID=2\n")
	r.reload()
	e = logs.FilterMessage("configuration reloaded; changed keys that need a restart were not applied").All()
	require.Len(t, e, 2)
	assert.Empty(t, e[1].ContextMap()["applied"])
	assert.Equal(t, []any{"NET_ID"}, e[1].ContextMap()["need_restart"])

	write("NAME=a\nROLE=primary\nLOG_LEVEL=warn\n")
	r.reload()
	assert.Equal(t, zapcore.WarnLevel, level.Level())
	assert.Equal(t, 1, logs.FilterMessage("configuration reloaded").Len())
}
