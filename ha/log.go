package ha

import "go.uber.org/zap"

// The zap vocabulary shared across hanode's logs.
func zapName(name string) zap.Field       { return zap.String("name", name) }
func zapPID(pid int) zap.Field            { return zap.Int("pid", pid) }
func zapSession(session string) zap.Field { return zap.String("session", session) }
