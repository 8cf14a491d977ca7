package main

import (
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hanode/hanode/conf"
)

// reloader applies on SIGHUP what can change while the node runs: it reads
// the configuration again, the same way as at start (env file, HANODE_*
// variables, flags), applies LOG_LEVEL, and names every other changed key,
// which only a restart applies. A configuration that no longer loads
// changes nothing: the node goes on with the one it has, and says why.
//
// The duty guard keeps the log level it was started with until a new guard
// starts (the next term).
type reloader struct {
	load  func() (*conf.Config, error)
	level zap.AtomicLevel
	log   *zap.Logger
	sd    *notifier

	mu      sync.Mutex
	running map[string]string // key → the value in force
}

// reloadable are the keys a reload applies.
var reloadable = []string{conf.KeyLogLevel}

func newReloader(cfg *conf.Config, load func() (*conf.Config, error), level zap.AtomicLevel, log *zap.Logger, sd *notifier) *reloader {
	r := &reloader{load: load, level: level, log: log, sd: sd, running: map[string]string{}}
	for _, s := range cfg.Settings() {
		r.running[s.Key] = s.Value
	}
	return r
}

// reload reads the configuration again and applies what it can; it logs
// what it applied and what needs a restart.
func (r *reloader) reload() {
	r.mu.Lock()
	defer r.mu.Unlock()
	done := r.sd.Reloading()
	defer done()
	cfg, err := r.load()
	if err != nil {
		r.log.Error("configuration reload failed; the running configuration stays in force", zap.Error(err))
		return
	}
	var applied, restart []string
	var newLevel *zapcore.Level
	for _, s := range cfg.Settings() {
		if r.running[s.Key] == s.Value {
			continue
		}
		switch s.Key {
		case conf.KeyLogLevel:
			lvl, err := zapcore.ParseLevel(s.Value)
			if err != nil { // conf has validated it
				r.log.Error("configuration reload: LOG_LEVEL not applied", zap.String("value", s.Value), zap.Error(err))
				continue
			}
			newLevel = &lvl
			r.running[s.Key] = s.Value
			applied = append(applied, s.Key)
		default:
			restart = append(restart, s.Key)
		}
	}
	// Logged at the level in force before: a reload that raises the level
	// still says what it did.
	fields := []zap.Field{zap.Strings("applied", applied), zap.Strings("reloadable", reloadable)}
	if len(restart) > 0 {
		r.log.Warn("configuration reloaded; changed keys that need a restart were not applied",
			append(fields, zap.Strings("need_restart", restart))...)
	} else {
		r.log.Info("configuration reloaded", fields...)
	}
	if newLevel != nil {
		r.level.SetLevel(*newLevel)
	}
}
