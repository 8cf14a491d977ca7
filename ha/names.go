package ha

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hanode/hanode/ha/internal/core"
	"go.uber.org/zap"
)

// The server name reservation (SessionConfig.ReserveName): names/<NAME>, an
// ephemeral node of the process's session. It is made in every new session
// before any election runs, and defended for the life of the session: when it is deleted or
// overwritten the session claims it again. Between two live processes with
// one name, the one that started first keeps it; the other is refused
// (ErrNameInUse), even if the node was deleted by hand in between.

// reserveName claims the name for session sid off the session goroutine
// and reports back.
// nameRecord is the data of names/<NAME>: who holds the name.
type nameRecord struct {
	Name    string    `json:"name"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	Session string    `json:"session"`
}

func (s *Session) reserveName(conn *zk.Conn, sid int64) {
	if s.nameBusy {
		return
	}
	s.nameBusy = true
	go func() {
		err := s.claimName(conn, sid)
		s.post(func() {
			s.nameBusy = false
			switch {
			case IsRefusal(err):
				s.err = err
			case err != nil:
				s.log.Warn("cannot reserve the server name yet; retrying", zap.Error(err))
				time.AfterFunc(250*time.Millisecond, func() { s.post(s.refresh) })
			case conn == s.conn.Load() && conn.SessionID() == sid:
				s.nameSID = sid
				s.log.Info("server name reserved", zap.String("znode", s.l.NameNode(s.cfg.Name)), zapSession(core.SessionHex(sid)))
				s.defendName(conn, sid)
				s.refresh()
			default:
				s.refresh() // the session changed meanwhile
			}
		})
	}()
}

// defendName watches the reservation and claims it again when another
// client deletes or overwrites it, without interrupting the elections.
func (s *Session) defendName(conn *zk.Conn, sid int64) {
	if s.nameWatchSID == sid {
		return
	}
	s.nameWatchSID = sid
	go func() {
		p := s.l.NameNode(s.cfg.Name)
		for {
			_, st, ch, err := conn.GetW(p)
			if err == nil && st.EphemeralOwner == sid {
				select {
				case ev := <-ch:
					if ev.Type == zk.EventNotWatching {
						return // session over: a new one reserves anew
					}
				case <-s.done:
					return
				}
			} else if errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrSessionExpired) ||
				errors.Is(err, zk.ErrClosing) || conn.SessionID() != sid {
				return
			}
			if conn.SessionID() != sid {
				return
			}
			select {
			case <-s.quit:
				return // our own close deleted it
			default:
			}
			s.log.Warn("server name reservation deleted or changed by another client; claiming it again",
				zap.String("znode", p))
			if err := s.claimName(conn, sid); IsRefusal(err) {
				s.post(func() { s.err = err })
				return
			} else if err != nil {
				select {
				case <-time.After(250 * time.Millisecond):
				case <-s.done:
					return
				}
			}
		}
	}()
}

// claimName creates names/<NAME> for session sid, taking it over from a
// holder that cannot be acting any more or that started after us.
func (s *Session) claimName(conn *zk.Conn, sid int64) error {
	p := s.l.NameNode(s.cfg.Name)
	rec := nameRecord{Name: s.cfg.Name, Host: s.cfg.Host, PID: s.cfg.PID, Started: s.cfg.Started, Session: core.SessionHex(sid)}
	for attempt := 0; attempt < 20; attempt++ {
		_, err := conn.Create(p, core.MustJSON(rec), zk.FlagEphemeral, s.cfg.ACL)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, zk.ErrNoNode):
			if err := ensurePath(conn, s.l.NamesDir(), s.cfg.ACL); err != nil {
				return err
			}
			continue
		case !errors.Is(err, zk.ErrNodeExists):
			return fmt.Errorf("ha: reserve name: %w", err)
		}
		data, st, err := conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return fmt.Errorf("ha: read name holder: %w", err)
		}
		if st.EphemeralOwner == sid {
			if bytes.Equal(data, core.MustJSON(rec)) {
				return nil // ours: an earlier create's reply was lost
			}
		}
		var holder nameRecord
		decodeErr := core.StrictJSON(data, &holder)
		why := ""
		switch {
		case st.EphemeralOwner == sid:
			why = "our own reservation, overwritten by another client"
		case decodeErr != nil || holder.Name == "" || st.EphemeralOwner == 0:
			why = "not a name reservation (" + core.Quote(data) + ")"
		case holder.Host == s.cfg.Host && holder.PID == s.cfg.PID && holder.Started.Equal(s.cfg.Started):
			why = "held by an earlier session of this process"
		case holder.Host == s.cfg.Host && !processAlive(holder.PID, holder.Started):
			why = fmt.Sprintf("held by pid %d on this host, which is no longer running", holder.PID)
		case holder.Started.After(s.cfg.Started):
			why = fmt.Sprintf("taken by host %s pid %d, which started after this process (%s)", holder.Host, holder.PID,
				holder.Started.Format(time.RFC3339Nano))
		default:
			return fmt.Errorf("%w: %q is held by host %s pid %d (since %s, session %s); the process that started "+
				"first keeps a name", ErrNameInUse, s.cfg.Name, holder.Host, holder.PID,
				holder.Started.Format(time.RFC3339), holder.Session)
		}
		s.log.Warn("taking over the server name", zap.String("znode", p), zap.String("why", why))
		if err := conn.Delete(p, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return fmt.Errorf("ha: take over name: %w", err)
		}
	}
	return fmt.Errorf("ha: reserve name %s: still contended after 20 attempts", p)
}

// ensurePath creates p and its missing ancestors as empty persistent nodes.
func ensurePath(conn *zk.Conn, p string, acl []zk.ACL) error {
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		_, err := conn.Create(p[:i], nil, 0, acl)
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("ha: create %s: %w", p[:i], err)
		}
	}
	return nil
}

// processAlive reports whether pid runs on this host and is the process
// that started at started (a reused pid belongs to a process started later).
func processAlive(pid int, started time.Time) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	at, ok := processStart(pid)
	if !ok || started.IsZero() {
		return true // cannot tell: assume it is the holder
	}
	return !at.After(started.Add(2 * time.Second))
}

// processStart reads when pid started from /proc (Linux; ok false elsewhere).
func processStart(pid int) (time.Time, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return time.Time{}, false
	}
	// Field 22 (starttime, clock ticks since boot) follows the command name
	// in parentheses, which may itself contain spaces.
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 20 {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	sys, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(sys), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			const clkTck = 100 // USER_HZ on every Linux hanode runs on
			return time.Unix(boot, 0).Add(time.Duration(ticks) * time.Second / clkTck), true
		}
	}
	return time.Time{}, false
}
