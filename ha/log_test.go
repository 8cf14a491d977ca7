package ha

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestZooKeeperChatterIsDebug: go-zookeeper's own lines (a connect, a
// reconnect) reach the log at debug level, named zk, so that an info log
// shows only hanode's own account of the session.
func TestZooKeeperChatterIsDebug(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	zkLogger(zap.New(core)).Printf("connected to %s", "127.0.0.1:2181")
	entries := logs.AllUntimed()
	if len(entries) != 1 {
		t.Fatalf("got %d entries, want 1", len(entries))
	}
	e := entries[0]
	if e.Level != zapcore.DebugLevel || e.LoggerName != "zk" || e.Message != "connected to 127.0.0.1:2181" {
		t.Errorf("entry = %v %q %q, want debug, zk, the line", e.Level, e.LoggerName, e.Message)
	}
}
