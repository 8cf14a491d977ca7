package ha

import (
	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The zap vocabulary shared across hanode's logs.
func zapSession(session string) zap.Field { return zap.String("session", session) }

// zkLogger routes go-zookeeper's own chatter (every connect, reconnect and
// ended loop) through log, named "zk", at debug level: hanode logs each
// change of the session itself, at info.
func zkLogger(log *zap.Logger) zk.Logger {
	std, err := zap.NewStdLogAt(log.Named("zk"), zapcore.DebugLevel)
	if err != nil { // only for a level zap does not know
		return zap.NewStdLog(log.Named("zk"))
	}
	return std
}
