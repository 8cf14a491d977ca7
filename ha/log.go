package ha

import "go.uber.org/zap"

// The zap vocabulary shared across hanode's logs.
func zapSession(session string) zap.Field { return zap.String("session", session) }
