package ha

import "go.uber.org/zap"

// The zap vocabulary shared across hanode's logs.
func zapPID(pid int) zap.Field            { return zap.Int("pid", pid) }
func zapSession(session string) zap.Field { return zap.String("session", session) }
